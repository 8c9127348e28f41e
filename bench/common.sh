# Shared by bench/compare.sh and bench/cluster.sh (sourced, not run): building the two executables, free ports,
# waiting for a listener, starting etcd and Sluice brokers on it, and stopping a child by PID.
# Needs $repo and $build set by the caller; build_tools sets $sluice and $bench.

# build_tools NAME: builds sluice and sluice-bench in Release unless --no-build; fails naming NAME when missing.
build_tools() {
  if [ "$build" -eq 1 ]; then
    echo "building Release (sluice, sluice-bench)..." >&2
    dotnet build "$repo/src/Sluice.Cli" -c Release -nologo -clp:ErrorsOnly >&2
    dotnet build "$repo/bench/Sluice.Bench" -c Release -nologo -clp:ErrorsOnly >&2
  fi
  sluice="$repo/src/Sluice.Cli/bin/Release/net10.0/sluice"
  bench="$repo/bench/Sluice.Bench/bin/Release/net10.0/sluice-bench"
  [ -x "$sluice" ] && [ -x "$bench" ] || { echo "$1: build first (missing $sluice or $bench)" >&2; exit 1; }
}

# free_port [N]: the first of N consecutive TCP ports on 127.0.0.1 that were all free a moment ago (default 1).
free_port() {
  python3 - "${1:-1}" <<'PY'
import socket, sys
n = int(sys.argv[1])
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    if base + n > 65536: continue
    held = []
    try:
        for p in range(base, base + n):
            t = socket.socket(); held.append(t); t.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        for t in held: t.close()
    print(base); sys.exit(0)
sys.exit("no free port range")
PY
}

# try_listening PID PORT [SECONDS]: 0 once 127.0.0.1:PORT accepts a connection (default within 60 s), 1 if PID exited
# first, 2 if the time ran out.
try_listening() {
  local p="$1" port="$2" secs="${3:-60}"
  for _ in $(seq 1 $((secs * 10))); do
    kill -0 "$p" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 2
}

# wait_listening PID PORT NAME LOG [SECONDS]: returns once 127.0.0.1:PORT accepts a connection (default within 60 s);
# exits 1, with the end of LOG, if PID exits first or the time runs out.
wait_listening() {
  local status=0
  try_listening "$1" "$2" "${5:-60}" || status=$?
  case "$status" in
    0) return 0 ;;
    1) echo "$(basename "$0"): $3 exited during startup:" >&2; tail -50 "$4" >&2 ;;
    *) echo "$(basename "$0"): $3 did not listen on 127.0.0.1:$2 within ${5:-60} s; see $4" >&2 ;;
  esac
  exit 1
}

# start_etcd DIR: one etcd member (the flags of the tests' LocalEtcd) on free loopback ports, data in DIR/etcd and
# log in DIR/etcd.log; sets etcd_pid and etcd_url, and returns once it listens. $ETCD names the binary.
start_etcd() {
  local dir="$1" client peer
  ETCD="${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}"
  [ -x "$ETCD" ] || { echo "$(basename "$0"): etcd not found (apt-get install -y etcd-server, or set ETCD)" >&2; exit 1; }
  client="$(free_port)"
  peer="$(free_port)"
  etcd_url="http://127.0.0.1:$client"
  "$ETCD" --name sluice --data-dir "$dir/etcd" --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "sluice=http://127.0.0.1:$peer" --auto-compaction-mode revision --auto-compaction-retention 1000 \
    >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  wait_listening "$etcd_pid" "$client" etcd "$dir/etcd.log"
  # Listening is not serving: a broker gives etcd 5 s to answer at start-up, which a busy machine can miss while
  # etcd elects itself. Wait until its health endpoint says so.
  for _ in $(seq 1 120); do
    python3 -c 'import json, sys, urllib.request; sys.exit(0 if json.load(urllib.request.urlopen(sys.argv[1] + "/health", timeout=2)).get("health") == "true" else 1)' \
      "$etcd_url" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "$(basename "$0"): etcd at $etcd_url is not healthy after 60 s; see $dir/etcd.log" >&2
  exit 1
}

# start_sluice_broker ID PORT DIR CONFIG LEVEL: `sluice serve --etcd-endpoints $etcd_url` as broker ID on
# 127.0.0.1:PORT (Release build), data in DIR/ID/data, log appended to DIR/ID.log, so a restart with the same
# arguments is the same broker; sets broker_pid and returns at once (wait_listening waits for it).
start_sluice_broker() {
  local b="$1" port="$2" dir="$3" config="$4" level="$5"
  mkdir -p "$dir/$b/data" "$dir/$b/run"
  # Run from an empty directory beside the data dir: ASP.NET Core's config watcher covers the working directory.
  (cd "$dir/$b/run" && exec "$sluice" serve --server-id "$b" --host 127.0.0.1 --port "$port" --data-dir "$dir/$b/data" \
    --etcd-endpoints "$etcd_url" -c "$config" --level "$level") >>"$dir/$b.log" 2>&1 &
  broker_pid=$!
}

# start_sluice_brokers DIR CONFIG LEVEL: brokers b1..b3 on etcd (start_sluice_broker), each on a free port, waiting
# until all listen; a broker that exits during start-up (on a loaded machine etcd can miss a broker's 5 s start-up
# deadline) is started again, 3 tries each. Sets the arrays broker_pids and broker_ports (b1 first) and $brokers
# (host:port,...), and appends every pid it starts to the caller's array `started` (what its cleanup stops).
start_sluice_brokers() {
  local dir="$1" config="$2" level="$3" i try status
  broker_pids=(); broker_ports=()
  for i in 1 2 3; do
    broker_ports+=("$(free_port)")
    start_sluice_broker "b$i" "${broker_ports[$((i - 1))]}" "$dir" "$config" "$level"
    broker_pids+=("$broker_pid"); started+=("$broker_pid")
  done
  for i in 1 2 3; do
    for try in 1 2 3; do
      status=0
      try_listening "${broker_pids[$((i - 1))]}" "${broker_ports[$((i - 1))]}" 60 || status=$?
      [ "$status" -eq 0 ] && break
      if [ "$status" -eq 1 ] && [ "$try" -lt 3 ]; then
        echo "$(basename "$0"): b$i exited during start-up (try $try), starting it again: $(tail -1 "$dir/b$i.log")" >&2
        start_sluice_broker "b$i" "${broker_ports[$((i - 1))]}" "$dir" "$config" "$level"
        broker_pids[$((i - 1))]="$broker_pid"; started+=("$broker_pid")
        continue
      fi
      wait_listening "${broker_pids[$((i - 1))]}" "${broker_ports[$((i - 1))]}" "b$i" "$dir/b$i.log" 1
    done
  done
  brokers="127.0.0.1:${broker_ports[0]},127.0.0.1:${broker_ports[1]},127.0.0.1:${broker_ports[2]}"
}

# wait_rf3_stream LOG ARGS...: the brokers listen before all three have registered; returns once `sluice-bench ARGS`
# (which should name the servers and the target) can create and delete a replication-factor-3 stream, or exits 1
# after 60 tries, printing LOG.
wait_rf3_stream() {
  local log="$1"; shift
  for _ in $(seq 1 60); do
    if "$bench" producer "$@" --stream ready --subject ready --create-stream --delete-stream --replication-factor 3 \
        --ack-policy all -n 10 --timeout 30 >"$log" 2>&1; then
      return 0
    fi
    sleep 1
  done
  echo "$(basename "$0"): the cluster ($*) did not accept a replication-factor-3 stream within 60 tries:" >&2
  cat "$log" >&2
  exit 1
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
stop_pid() {
  local p="$1"
  [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
