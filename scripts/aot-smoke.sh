#!/usr/bin/env bash
# Smoke test of the Native AOT `sluice` (the binary users install): publishes it, then drives every
# subsystem whose AOT behaviour differs from the JIT build's: the command line (System.CommandLine,
# Spectre.Console), a YAML config file (YamlDotNet), the gRPC API (Google.Protobuf, Kestrel h2c) through
# the CLI's own client and through Python's grpcio conformance suite, NATS (NATS.Net), the monitoring port
# (Kestrel HTTP/1.1, OpenTelemetry's Prometheus exporter, the web console), the baked-in runtime settings
# (server GC, the thread-pool spin limit) and `sluice cluster --brokers 3` on etcd (dotnet-etcd, Grpc.Net.Client).
# Every server runs on 127.0.0.1 on a free port with a temp dir and is stopped by its PID.
# Prints PASS/FAIL per check and exits 1 if any failed. Not part of ./test.sh (the AOT publish takes ~3 min).
#
# usage: scripts/aot-smoke.sh [--bin PATH]     (default: publish with scripts/publish-aot.sh, then test that binary)
#   --bin PATH   test an existing AOT binary (e.g. the one in a release archive) instead of publishing
#   --rid RID    publish for another RID of this OS (see scripts/publish-aot.sh)
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

bin=$(scripts/publish-aot.sh "$@") || exit 1

tmp=$(mktemp -d /tmp/sluice-aot-smoke.XXXXXX)
pids=()
failed=0
pass() { printf 'PASS  %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; [ $# -gt 1 ] && printf '      %s\n' "${@:2}"; failed=$((failed + 1)); }
# check NAME COMMAND...: PASS when the command exits 0; its output is kept in $out.
check() { local name=$1; shift; if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$(printf '%s' "$out" | tail -5)"; fi; }
# expect NAME TEXT COMMAND...: PASS when the command exits 0 and prints TEXT.
expect() {
  local name=$1 text=$2; shift 2
  if out=$("$@" 2>&1) && grep -qF -- "$text" <<<"$out"; then pass "$name"; else fail "$name" "expected: $text" "$(printf '%s' "$out" | tail -5)"; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
stop() { # stop PID: SIGTERM, wait up to 15 s, then SIGKILL; returns the exit status
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid"; echo "killed $pid after 15 s" >&2; }
  wait "$pid" 2>/dev/null
}
cleanup() {
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; }; done
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "binary: $bin ($(du -hL "$bin" | cut -f1))"

# --- the command line alone --------------------------------------------------------------------
expect "version" "0." "$bin" version
expect "help (System.CommandLine)" "--from" "$bin" help sub
if "$bin" stream create 2>/dev/null; then fail "usage error exits 2"; else [ $? -eq 2 ] && pass "usage error exits 2" || fail "usage error exits 2"; fi
out=$("$bin" stream list --servers 127.0.0.1:1 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "^sluice: cannot reach 127.0.0.1:1" <<<"$out" && pass "unreachable server: exit 1 and one clear line" \
  || fail "unreachable server: exit 1 and one clear line" "exit $rc" "$out"
# the runtime settings of Sluice.Cli.csproj, baked into the binary (there is no runtimeconfig.json)
for knob in System.GC.Server System.Threading.ThreadPool.UnfairSemaphoreSpinLimit System.Globalization.Invariant; do
  grep -qaF "$knob" "$bin" && pass "runtime knob baked in: $knob" || fail "runtime knob baked in: $knob"
done

# --- one server from a YAML file, with NATS and the monitoring port -----------------------------
if command -v nats-server >/dev/null; then
  nport=$(free_port)
  nats-server -a 127.0.0.1 -p "$nport" >"$tmp/nats.log" 2>&1 &
  npid=$!; pids+=("$npid")
  wait_port "$nport" && pass "nats-server up" || fail "nats-server up" "$(tail -3 "$tmp/nats.log")"
else
  nport=; echo "SKIP  NATS: nats-server is not installed (apt-get install nats-server)"
fi

port=$(free_port); mport=$(free_port)
mkdir -p "$tmp/s1/data"
{
  echo "listen: 127.0.0.1:$port"
  echo "data:"
  echo "  dir: $tmp/s1/data"
  echo "logging:"
  echo "  level: info"
  echo "monitor:"
  echo "  listen: 127.0.0.1:$mport"
  [ -n "$nport" ] && printf 'nats:\n  servers:\n    - nats://127.0.0.1:%s\n' "$nport"
} >"$tmp/s1/sluice.yaml"
(cd "$tmp/s1" && exec "$bin" serve -c "$tmp/s1/sluice.yaml" >"$tmp/s1/log" 2>&1) &
spid=$!; pids+=("$spid")
if wait_port "$port"; then pass "serve from a YAML config file"; else fail "serve from a YAML config file" "$(tail -5 "$tmp/s1/log")"; fi
S=(--servers "127.0.0.1:$port")

# Python grpcio conformance suite first: it expects a server with no streams.
if /usr/bin/python3 -c 'import grpc, grpc_tools' 2>/dev/null; then
  (cd tests/conformance && check "grpcio conformance suite (tests/conformance/broker.py)" /usr/bin/python3 broker.py "127.0.0.1:$port")
  # delete what it left, so the counts below are ours
  for s in $("$bin" stream list "${S[@]}" -o json 2>/dev/null | python3 -c 'import json,sys; [print(s["name"]) for s in json.load(sys.stdin)]'); do
    "$bin" stream delete "$s" "${S[@]}" >/dev/null 2>&1
  done
else
  echo "SKIP  grpcio conformance suite: apt-get install python3-grpcio python3-grpc-tools"
fi

expect "stream create" "created" "$bin" stream create orders --subject orders --partitions 2 "${S[@]}"
expect "pub" "offset" "$bin" pub orders "first order" "second order" "third" --round-robin -o json "${S[@]}"
expect "sub -o json (source-generated JSON)" '"value":"second order"' "$bin" sub orders --from earliest --idle 2s -o json "${S[@]}"
expect "stream describe (Spectre table)" "orders" "$bin" stream describe orders "${S[@]}"
expect "metadata" "127.0.0.1:$port" "$bin" metadata "${S[@]}"
expect "cluster status -o json" '"clustered"' "$bin" cluster status -o json "${S[@]}"
expect "top --iterations 2" "orders" "$bin" top --iterations 2 --interval 200ms "${S[@]}"
printf 'line one\nline two\n' >"$tmp/lines"
expect "pub from stdin" "offset" sh -c "\"$bin\" pub orders --partition 1 -o json --servers 127.0.0.1:$port < $tmp/lines"

if [ -n "$nport" ]; then
  expect "stream on a NATS subject" "created" "$bin" stream create natsy --subject natsy.in "${S[@]}"
  sleep 0.5
  # a plain NATS publisher (the raw protocol): the broker must capture it into the stream
  python3 - "$nport" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.recv(4096)
s.sendall(b'CONNECT {"verbose":false}\r\nPUB natsy.in 9\r\nfrom-nats\r\nPING\r\n')
buf = b""
while b"PONG" not in buf:
    buf += s.recv(4096)
s.close()
PY
  expect "NATS publish captured (NATS.Net)" "from-nats" "$bin" sub natsy --from earliest --idle 2s "${S[@]}"
fi

# monitoring port: Prometheus text (OpenTelemetry), health, JSON views, the web console
M=http://127.0.0.1:$mport
expect "/healthz" "" curl -fsS "$M/healthz"
expect "/metrics: Sluice series" "sluice_" curl -fsS "$M/metrics"
expect "/metrics: runtime series" "dotnet_" curl -fsS "$M/metrics"
expect "/v1/streams JSON view" "orders" curl -fsS "$M/v1/streams"
expect "/console/ (web console)" "<html" curl -fsS "$M/console/"

# server GC: one heap per core, with its GC threads (the JIT build's runtimeconfig says the same)
gc_threads=$(cat /proc/$spid/task/*/comm 2>/dev/null | grep -c "Server GC" || true)
[ "${gc_threads:-0}" -ge 1 ] && pass "server GC threads in the AOT process ($gc_threads)" \
  || fail "server GC threads in the AOT process" "$(cat /proc/$spid/task/*/comm | sort | uniq -c | head -20)"
# ... and the DOTNET_ environment still overrides a baked-in setting, as it overrides runtimeconfig.json under the JIT
gport=$(free_port)
(cd "$tmp" && DOTNET_gcServer=0 exec "$bin" serve --port "$gport" --host 127.0.0.1 --data-dir "$tmp/gc0" >"$tmp/gc0.log" 2>&1) &
gpid=$!; pids+=("$gpid")
if wait_port "$gport"; then
  n=$(cat /proc/$gpid/task/*/comm 2>/dev/null | grep -c "Server GC" || true)
  [ "${n:-0}" -eq 0 ] && pass "DOTNET_gcServer=0 overrides it (workstation GC, no server GC threads)" \
    || fail "DOTNET_gcServer=0 overrides it" "$n server GC threads"
else
  fail "serve with DOTNET_gcServer=0" "$(tail -3 "$tmp/gc0.log")"
fi
stop "$gpid"
rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$spid/status)
echo "info  serving RSS ${rss} MiB"

stop "$spid"; rc=$?
[ "$rc" -eq 0 ] && pass "serve stops on SIGTERM with exit 0" || fail "serve stops on SIGTERM with exit 0" "exit $rc" "$(tail -5 "$tmp/s1/log")"
grep -q "Unhandled\|MissingMetadata\|NotSupportedException\|PlatformNotSupported" "$tmp/s1/log" \
  && fail "server log has no AOT errors" "$(grep -m3 "Unhandled\|MissingMetadata\|NotSupported" "$tmp/s1/log")" || pass "server log has no AOT errors"
[ -n "$nport" ] && stop "$npid"

# --- a local cluster: etcd plus three `sluice serve` children of the same binary ----------------
if command -v etcd >/dev/null; then
  (cd "$tmp" && exec "$bin" cluster --brokers 3 --base-port 0 --data-dir "$tmp/cluster" >"$tmp/cluster.log" 2>&1) &
  cpid=$!; pids+=("$cpid")
  addr=
  for _ in $(seq 300); do
    [ "$(grep -cE '^b[0-9].*127\.0\.0\.1:[0-9]+' "$tmp/cluster.log")" -ge 3 ] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  addr=$(grep -oE '^b1[^0-9].*127\.0\.0\.1:[0-9]+' "$tmp/cluster.log" | grep -oE '127\.0\.0\.1:[0-9]+' | head -1)
  if [ -n "$addr" ]; then
    pass "cluster --brokers 3 started"
    C=(--servers "$addr")
    ok=
    for _ in $(seq 100); do
      n=$("$bin" metadata -o json "${C[@]}" 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["brokers"]))' 2>/dev/null)
      [ "${n:-0}" -eq 3 ] && { ok=1; break; }; sleep 0.2
    done
    [ -n "$ok" ] && pass "metadata lists 3 brokers (etcd)" || fail "metadata lists 3 brokers (etcd)" "$(tail -5 "$tmp/cluster.log")"
    expect "cluster status names a controller" '"controller":"b' "$bin" cluster status -o json "${C[@]}"
    expect "replicated stream create (factor 3)" "created" "$bin" stream create rep --subject rep --replication-factor 3 "${C[@]}"
    expect "replicated pub" "offset" "$bin" pub rep a b c -o json "${C[@]}"
    expect "replicated sub" '"value":"c"' "$bin" sub rep --from earliest --idle 2s -o json "${C[@]}"
  else
    fail "cluster --brokers 3 started" "$(tail -10 "$tmp/cluster.log")"
  fi
  children=$(pgrep -P "$cpid" | tr '\n' ' ')
  stop "$cpid"; rc=$?
  [ "$rc" -eq 0 ] && pass "cluster stops on SIGTERM with exit 0" || fail "cluster stops on SIGTERM with exit 0" "exit $rc" "$(tail -5 "$tmp/cluster.log")"
  left=
  for c in $children; do kill -0 "$c" 2>/dev/null && left="$left $c"; done
  [ -z "$left" ] && pass "cluster stopped its brokers and etcd" || fail "cluster stopped its brokers and etcd" "still running:$left"
else
  echo "SKIP  cluster: etcd is not installed (apt-get install etcd-server)"
fi

echo
if [ "$failed" -eq 0 ]; then echo "aot-smoke: all checks passed"; else echo "aot-smoke: $failed check(s) failed"; exit 1; fi
