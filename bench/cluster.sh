#!/usr/bin/env bash
# Replicated streams on a local 3-broker cluster: publish throughput and ack latency for
# replication factor 1 / ack LEADER, RF 3 / LEADER and RF 3 / ALL, or (--failover K) the time from
# SIGKILL of a partition leader to the first ack on its successor, K times.
#
# Starts one etcd (the same flags as LocalEtcd) and 3 `sluice serve --etcd-endpoints` brokers b1..b3
# (Release, storage.durability never, as compare.sh) on 127.0.0.1 with free ports and fresh temp data
# dirs. Not `sluice cluster`: that stops every broker when one exits, and failover needs to kill one
# and start it again. Everything started is stopped by PID on exit, error or Ctrl-C.
#
# Publishers use Sluice.Client with its defaults: idempotent publishing on (a message id per publish),
# publishes go straight to the partition leader (from the client's metadata).
#
# Throughput mode (default): for each run, the three configurations in rotating order, each on a fresh
# stream, each in two shapes: synchronous (one publish awaited at a time) and windowed (--window publishes
# in flight). Prints per-run rates, p50/p99 ack latency, the CPU time of the three brokers per message,
# load average and steal, then medians.
#
# Failover mode (--failover K): one RF 3 stream (min ISR 2), a `sluice-bench pulse` publisher sending
# ack ALL one message at a time; K times: find the leader, SIGKILL its broker, wait for the first ack after
# the kill, start the broker again with the same id and data dir, wait until it is back in the ISR and
# leads again (the controller hands leadership back to the preferred replica), and wait for acks to flow.
#
# usage: bench/cluster.sh [--runs N] [--sync N] [--windowed N] [--window W] [--ms BYTES] [--failover K]
#                         [--no-build] [--out FILE] [--keep]
#   --runs N       rounds of the throughput rows (default 3)
#   --sync N       messages per synchronous run (default 10000)
#   --windowed N   messages per windowed run (default 100000)
#   --window W     publishes in flight in the windowed shape (default 100)
#   --ms BYTES     message size (default 256)
#   --failover K   measure failover K times instead of throughput
#   --out FILE     also write the summary (markdown) to FILE
#   --keep         keep the temp dir (logs) and print its path
# Environment: ETCD (the etcd binary), SLUICE_EXTRA_CONFIG (YAML appended to every broker's config)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=3
SYNC_N=10000
WIN_N=100000
WINDOW=100
MS=256
FAILOVER=0
build=1
out=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift ;;
    --sync) SYNC_N="$2"; shift ;;
    --windowed) WIN_N="$2"; shift ;;
    --window) WINDOW="$2"; shift ;;
    --ms) MS="$2"; shift ;;
    --failover) FAILOVER="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

command -v python3 >/dev/null || { echo "cluster.sh: python3 is needed" >&2; exit 1; }

# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
build_tools cluster.sh

work="$(mktemp -d -t sluice-cluster-XXXXXX)"
etcd_pid=""
pulse_pid=""
declare -A pid port
started=()   # start_sluice_brokers lists every broker process it starts (cleanup stops pid[]: the live ones)

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$pulse_pid"
  for b in b1 b2 b3; do stop_pid "${pid[$b]:-}"; done
  for p in "${started[@]}"; do stop_pid "$p"; done   # brokers of a start-up that failed half-way
  stop_pid "$etcd_pid"
  if [ "$keep" -eq 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

now_us() { date +%s%6N; }
wait_port() { wait_listening "$1" "$2" "$3" "$work/$3.log"; } # pid port name

start_etcd "$work"

level=warn
[ "$FAILOVER" -gt 0 ] && level=info   # the failover logs say who was elected when
printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
# SLUICE_EXTRA_CONFIG: more YAML for every broker, e.g. $'streams:\n  duplicate.window: 0s'
[ -n "${SLUICE_EXTRA_CONFIG:-}" ] && printf '%s\n' "$SLUICE_EXTRA_CONFIG" >>"$work/sluice.yaml"
start_broker() { start_sluice_broker "$1" "${port[$1]}" "$work" "$work/sluice.yaml" "$level"; pid[$1]=$broker_pid; } # id
start_sluice_brokers "$work" "$work/sluice.yaml" "$level"
for i in 1 2 3; do pid[b$i]="${broker_pids[$((i - 1))]}"; port[b$i]="${broker_ports[$((i - 1))]}"; done
servers="$brokers"
echo "etcd $etcd_url (pid $etcd_pid); b1 ${port[b1]} (pid ${pid[b1]}), b2 ${port[b2]} (pid ${pid[b2]}), b3 ${port[b3]} (pid ${pid[b3]}); logs in $work" >&2
wait_rf3_stream "$work/ready.log" -s "$servers"

# CPU ticks of the three brokers, steal and total jiffies, load average: one line.
snapshot() {
  python3 - "${pid[b1]}" "${pid[b2]}" "${pid[b3]}" <<'PY'
import sys
t = 0
for p in sys.argv[1:]:
    f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
    t += int(f[11]) + int(f[12])
c = [int(x) for x in open("/proc/stat").readline().split()[1:]]
print(t, c[7], sum(c), open("/proc/loadavg").read().split()[0])
PY
}

if [ "$FAILOVER" -eq 0 ]; then
  configs="rf1-leader rf3-leader rf3-all"
  : >"$work/runs.tsv"
  rotate() { local r="$1"; shift; local a=("$@"); local n=${#a[@]}; for i in $(seq 0 $((n - 1))); do echo "${a[$(((i + r) % n))]}"; done; }
  for r in $(seq 1 "$RUNS"); do
    for shape in sync windowed; do
      for cfg in $(rotate "$((r - 1))" $configs); do
        rf="${cfg%%-*}"; rf="${rf#rf}"; ack="${cfg#*-}"
        if [ "$shape" = sync ]; then n="$SYNC_N"; pb=1; else n="$WIN_N"; pb="$WINDOW"; fi
        stream="bench-$cfg-$shape-$r"
        before="$(snapshot)"
        "$bench" producer -s "$servers" --stream "$stream" --subject "$stream" --create-stream --delete-stream \
          --replication-factor "$rf" --ack-policy "$ack" -n "$n" --pb "$pb" --ms "$MS" --warmup "$((n / 10))" \
          --timeout 900 --output json >"$work/run.json" 2>"$work/run.err" || { echo "cluster.sh: run $cfg $shape $r failed:" >&2; cat "$work/run.err" "$work/run.json" >&2; exit 1; }
        after="$(snapshot)"
        line="$(python3 - "$cfg" "$shape" "$r" "$before" "$after" "$work/run.json" <<'PY'
import json, sys, os
cfg, shape, r, before, after, path = sys.argv[1:]
j = json.load(open(path))
b = [float(x) for x in before.split()]; a = [float(x) for x in after.split()]
hz = os.sysconf("SC_CLK_TCK")
# The brokers' CPU covers the whole process run: stream creation, the warm-up (a tenth) and the timed part.
n = j["messages"] * 1.1
cpu_us = (a[0] - b[0]) / hz * 1e6 / max(n, 1)
steal = 100 * (a[1] - b[1]) / max(a[2] - b[2], 1)
lat = j.get("latency_us") or {}
print("\t".join(str(x) for x in [cfg, shape, r, round(j["msgs_per_sec"]), lat.get("p50", 0), lat.get("p99", 0), round(cpu_us, 1), round(steal, 2), b[3], a[3], j.get("errors", 0), j["client"]["cpu_us_per_msg"]]))
PY
)"
        echo "$line" >>"$work/runs.tsv"
        echo "$line" | awk -F'\t' '{printf "run %s %-10s %-8s %8d msgs/s  p50 %6d us  p99 %7d us  brokers cpu %5.1f us/msg  steal %.2f %%  load %s..%s  errors %s\n", $3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11}' >&2
      done
    done
  done
  # What the three brokers spend with no publisher (membership renewals, idle fetch loops), a fixed cost inside
  # every run's CPU figure; measured after the rows, once start-up JIT compilation is over.
  idle_before="$(snapshot)"; sleep 5; idle_after="$(snapshot)"
  idle_ms="$(python3 -c 'import os,sys; b=sys.argv[1].split(); a=sys.argv[2].split(); print(round((float(a[0])-float(b[0]))/os.sysconf("SC_CLK_TCK")*1000/5))' "$idle_before" "$idle_after")"
  echo "idle: the three brokers used $idle_ms ms of CPU per second with no publisher" >&2
  summary="$(python3 - "$work/runs.tsv" "$SYNC_N" "$WIN_N" "$WINDOW" "$MS" "$idle_ms" <<'PY'
import sys, statistics as st
path, sync_n, win_n, window, ms, idle = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
out = [f"{ms}-byte messages; sync = one publish awaited at a time ({sync_n} per run), windowed = {window} in flight ({win_n} per run); medians of {len(rows) // 6} runs", "",
       "| configuration | shape | msgs/s (median) | p50 ms | p99 ms | brokers' CPU µs/msg | client CPU µs/msg | runs (msgs/s) |", "|---|---|---:|---:|---:|---:|---:|---|"]
med = {}
for cfg in ["rf1-leader", "rf3-leader", "rf3-all"]:
    for shape in ["sync", "windowed"]:
        rs = [x for x in rows if x[0] == cfg and x[1] == shape]
        if not rs: continue
        rate = st.median(int(x[3]) for x in rs); med[(cfg, shape)] = rate
        p50 = st.median(int(x[4]) for x in rs) / 1000; p99 = st.median(int(x[5]) for x in rs) / 1000
        cpu = st.median(float(x[6]) for x in rs); ccpu = st.median(float(x[11]) for x in rs)
        name = {"rf1-leader": "RF 1, ack LEADER", "rf3-leader": "RF 3, ack LEADER", "rf3-all": "RF 3, ack ALL"}[cfg]
        out.append(f"| {name} | {shape} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {ccpu:.1f} | {' / '.join(f'{int(x[3]):,}' for x in rs)} |")
out.append("")
for shape in ["sync", "windowed"]:
    base = med.get(("rf1-leader", shape))
    if base:
        out.append(f"{shape}: RF 3 LEADER / RF 1 = {med[('rf3-leader', shape)] / base:.2f}, RF 3 ALL / RF 1 = {med[('rf3-all', shape)] / base:.2f}")
steal = [float(x[7]) for x in rows]; loads = [float(x[8]) for x in rows] + [float(x[9]) for x in rows]
errors = sum(int(x[10]) for x in rows)
out.append(f"idle brokers (no publisher): {idle} ms CPU per second, included in the brokers' CPU column")
out.append(f"load average {min(loads):.1f}..{max(loads):.1f} (median {st.median(loads):.1f}); steal per run {min(steal):.2f}..{max(steal):.2f} %; errors {errors}")
print("\n".join(out))
PY
)"
else
  # One RF 3 stream, min ISR 2 (the production layout in docs/cluster.md).
  "$bench" producer -s "$servers" --stream failover --subject failover --create-stream --replication-factor 3 --min-isr 2 \
    --ack-policy all -n 10 --timeout 60 >"$work/create.log" 2>&1 || { cat "$work/create.log" >&2; exit 1; }
  state() { "$bench" partition-state -s "$servers" --stream failover 2>/dev/null || true; }
  field() { python3 -c 'import json,sys
try: j=json.loads(sys.stdin.read())
except Exception: sys.exit(0)
k=sys.argv[1]
v=j.get(k)
print(",".join(v) if isinstance(v, list) else (v or ""))' "$1"; }
  # Stable: every replica in the ISR and the preferred replica leading.
  wait_stable() { # timeout seconds; prints seconds waited
    local start; start="$(now_us)"
    while :; do
      local s; s="$(state)"
      local isr; isr="$(echo "$s" | field isr)"; local lead; lead="$(echo "$s" | field leader)"; local reps; reps="$(echo "$s" | field replicas)"
      local n; n="$(echo "$isr" | tr ',' '\n' | grep -c . || true)"
      if [ "$n" -eq 3 ] && [ -n "$lead" ] && [ "$lead" = "${reps%%,*}" ]; then
        echo $(( ($(now_us) - start) / 1000 )); return 0
      fi
      [ $(( $(now_us) - start )) -gt $(( $1 * 1000000 )) ] && { echo "cluster.sh: not stable after $1 s: $s" >&2; return 1; }
      sleep 0.2
    done
  }
  # Waits until the pulse log has a line "$1 ..." whose first number is after $2; prints that line.
  wait_pulse() { # kind after_us timeout_s
    local deadline=$(( $(now_us) + $3 * 1000000 ))
    while :; do
      local l; l="$(awk -v k="$1" -v t="$2" '$1 == k && $3 + 0 > t + 0 { print; exit }' "$work/pulse.log")"
      if [ "$1" = ack ]; then l="$(awk -v t="$2" '$1 == "ack" && $2 + 0 > t + 0 { print; exit }' "$work/pulse.log")"; fi
      [ -n "$l" ] && { echo "$l"; return 0; }
      kill -0 "$pulse_pid" 2>/dev/null || { echo "cluster.sh: the pulse publisher exited:" >&2; cat "$work/pulse.log" >&2; return 1; }
      [ "$(now_us)" -gt "$deadline" ] && { echo "cluster.sh: no '$1' after $2 within $3 s" >&2; return 1; }
      sleep 0.1
    done
  }
  wait_stable 60 >/dev/null
  "$bench" pulse -s "$servers" --stream failover --ack-policy all --ms "$MS" --gap-ms 50 >"$work/pulse.log" 2>"$work/pulse.err" &
  pulse_pid=$!
  wait_pulse ack 0 60 >/dev/null
  : >"$work/failover.tsv"
  for k in $(seq 1 "$FAILOVER"); do
    s="$(state)"; leader="$(echo "$s" | field leader)"
    [ -n "$leader" ] || { echo "cluster.sh: no leader: $s" >&2; exit 1; }
    load="$(cut -d' ' -f1 /proc/loadavg)"
    victim="${pid[$leader]}"
    t_kill="$(now_us)"
    kill -KILL "$victim"
    wait "$victim" 2>/dev/null || true
    gap="$(wait_pulse gap "$t_kill" 120)"
    first_ack="$(echo "$gap" | cut -d' ' -f3)"
    ms=$(( (first_ack - t_kill) / 1000 ))
    new_leader="$(echo "$(state)" | field leader)"
    start_broker "$leader"
    wait_port "${pid[$leader]}" "${port[$leader]}" "$leader"
    t_back="$(now_us)"
    stable_ms="$(wait_stable 180)"
    t_stable="$(now_us)"
    # Acks flow again (after the hand-back to the preferred replica) before the next kill.
    flowing="$(wait_pulse ack "$t_stable" 60 | cut -d' ' -f2)"
    # The longest pause that ended between the restart and acks flowing again: the hand-back (or noise, when shorter).
    handback="$(awk -v a="$t_back" -v b="$flowing" '$1 == "gap" && $3 + 0 > a + 0 && $3 + 0 <= b + 0 { d = ($3 - $2) / 1000; if (d > m) m = d } END { if (m) printf "%d", m }' "$work/pulse.log")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" "$leader" "$new_leader" "$ms" "$(echo "$gap" | cut -d' ' -f4)" "$stable_ms" "${handback:-}" "$load" >>"$work/failover.tsv"
    echo "kill $k: leader $leader (pid $victim) killed; first ack $ms ms later (new leader ${new_leader:-?}, $(echo "$gap" | cut -d' ' -f4) failed publishes); restarted, back in the ISR and leading after $stable_ms ms; hand-back pause ${handback:-none} ms; load $load" >&2
  done
  stop_pid "$pulse_pid"; pulse_pid=""
  summary="$(python3 - "$work/failover.tsv" "$work/pulse.log" <<'PY'
import sys, statistics as st
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
ms = [int(x[3]) for x in rows]
stable = [int(x[5]) for x in rows]
hb = [int(x[6]) for x in rows if x[6]]
loads = [float(x[7]) for x in rows]
last = [l for l in open(sys.argv[2]) if l.startswith("acked")]
out = [f"{len(rows)} leader kills (SIGKILL), RF 3, min ISR 2, ack ALL, one publish at a time (Sluice.Client defaults: idempotent, 5 s ack wait)", "",
       f"kill → first ack on the new leader: median {st.median(ms):,.0f} ms, worst {max(ms):,} ms, best {min(ms):,} ms",
       f"each (ms): {' / '.join(str(x) for x in ms)}",
       f"restart → back in the ISR and leading again: median {st.median(stable):,.0f} ms (worst {max(stable):,})",
       f"longest pause between the restart and acks flowing again (leadership goes back to the preferred replica then): {('median %d ms, worst %d ms (%d of %d)' % (st.median(hb), max(hb), len(hb), len(rows))) if hb else 'none over 50 ms'}",
       f"failed publishes during the kill pauses: {sum(int(x[4]) for x in rows)}; {last[-1].strip() if last else ''}",
       f"load average at the kills {min(loads):.1f}..{max(loads):.1f} (median {st.median(loads):.1f})"]
print("\n".join(out))
PY
)"
fi

echo
echo "$summary"
[ -n "$out" ] && echo "$summary" >"$out"
exit 0
