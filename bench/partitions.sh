#!/usr/bin/env bash
# Many partitions on one node: creates --streams streams of --partitions partitions each with `sluice-bench producer`
# (one message per partition, round-robin), then checks what the monitoring port reports and what the server costs:
#   - /metrics: every stream's sluice_stream_received_messages_total equals its partition count (stream totals stay
#     exact however many partitions there are), the per-partition series stay within monitor.partition.series.max,
#     and no OpenTelemetry overflow series appears;
#   - the server's RSS and threads with all partitions open, the time to create them, and the time a restart takes
#     until /readyz answers and a partition created first can be read.
# Starts `sluice serve` (Release, storage.durability never, --monitor-listen) on free 127.0.0.1 ports with a fresh
# temp data dir and stops it by PID.
#
# usage: bench/partitions.sh [--streams N] [--partitions N] [--no-build] [--keep]
#   --streams N      streams to create (default 100)
#   --partitions N   partitions per stream (default 1000)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
STREAMS=100
PARTITIONS=1000
build=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --streams) STREAMS="$2"; shift 2 ;;
    --partitions) PARTITIONS="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--streams N] [--partitions N] [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"
build_tools partitions.sh

work="$(mktemp -d /tmp/sluice-partitions.XXXXXX)"
sluice_pid=""
cleanup() {
  stop_pid "$sluice_pid"
  if [ "$keep" -eq 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
mkdir -p "$work/cwd" "$work/data"
printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
port="$(free_port 2)"
monitor=$((port + 1))
start_server() {
  (cd "$work/cwd" && exec "$sluice" serve --port "$port" --host 127.0.0.1 --data-dir "$work/data" -c "$work/sluice.yaml" \
    --monitor-listen "127.0.0.1:$monitor" --level warn) >>"$work/sluice.log" 2>&1 &
  sluice_pid=$!
}
status_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

start_server
wait_listening "$sluice_pid" "$port" sluice "$work/sluice.log" 120
anon0=$(status_of "$sluice_pid" RssAnon)
t0=$(date +%s.%N)
for s in $(seq 0 $((STREAMS - 1))); do
  "$bench" producer -s "127.0.0.1:$port" --stream "wide$s" --subject "wide$s" -p "$PARTITIONS" -n "$PARTITIONS" --pb 100 \
    --ms 64 --create-stream >"$work/producer-$s.txt" 2>&1 || { echo "producer for wide$s failed:" >&2; tail -5 "$work/producer-$s.txt" >&2; exit 1; }
done
t1=$(date +%s.%N)
echo "created $STREAMS x $PARTITIONS partitions with one message each in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s"
# Anonymous memory (heap, stacks; not the mapped code or the page cache) beyond the idle server's, per partition.
per_partition() { awk -v a="$anon0" -v b="$(status_of "$sluice_pid" RssAnon)" -v n=$((STREAMS * PARTITIONS)) 'BEGIN {printf "%.1f KiB", (b - a) / n}'; }
echo "server: $(status_of "$sluice_pid" Threads) threads, RSS $(( $(status_of "$sluice_pid" VmRSS) / 1024 )) MiB, peak $(( $(status_of "$sluice_pid" VmHWM) / 1024 )) MiB, anonymous $(( $(status_of "$sluice_pid" RssAnon) / 1024 )) MiB ($(per_partition) per partition beyond the idle server's $((anon0 / 1024)) MiB)"

curl -s "http://127.0.0.1:$monitor/metrics" >"$work/metrics.txt"
python3 - "$work/metrics.txt" "$STREAMS" "$PARTITIONS" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
streams, partitions = int(sys.argv[2]), int(sys.argv[3])
totals = {}
partition_series = 0
overflow = 0
for line in text.splitlines():
    if line.startswith("#"):
        continue
    if "otel_metric_overflow" in line:
        overflow += 1
    m = re.match(r'sluice_stream_received_messages_total\{([^}]*)\} (\S+)', line)
    if m:
        name = re.search(r'messaging_destination_name="([^"]*)"', m.group(1)).group(1)
        totals[name] = float(m.group(2))
    if line.startswith("sluice_partition_received_messages_total{"):
        partition_series += 1
wrong = [f"wide{s}={totals.get(f'wide{s}')}" for s in range(streams) if totals.get(f"wide{s}") != partitions]
print(f"metrics: {len(totals)} stream series, {partition_series} per-partition series, {overflow} overflow series, "
      f"{streams - len(wrong)} of {streams} stream totals exact")
if wrong:
    print("wrong totals: " + ", ".join(wrong[:10]))
sys.exit(1 if wrong or overflow else 0)
PY

stop_pid "$sluice_pid"
t2=$(date +%s.%N)
start_server
until curl -sf "http://127.0.0.1:$monitor/readyz" >/dev/null 2>&1; do
  kill -0 "$sluice_pid" 2>/dev/null || { echo "the server exited while restarting:" >&2; tail -20 "$work/sluice.log" >&2; exit 1; }
  sleep 0.2
done
t3=$(date +%s.%N)
"$bench" consumer -s "127.0.0.1:$port" --stream wide0 --partition 0 -n 1 >"$work/consumer.txt" 2>&1 || { echo "reading wide0/0 after the restart failed" >&2; tail -5 "$work/consumer.txt" >&2; exit 1; }
t4=$(date +%s.%N)
echo "restart: ready in $(awk -v a="$t2" -v b="$t3" 'BEGIN {printf "%.1f", b - a}') s, wide0/0 read $(awk -v a="$t3" -v b="$t4" 'BEGIN {printf "%.1f", b - a}') s later"
echo "after restart: $(status_of "$sluice_pid" Threads) threads, RSS $(( $(status_of "$sluice_pid" VmRSS) / 1024 )) MiB, anonymous $(( $(status_of "$sluice_pid" RssAnon) / 1024 )) MiB ($(per_partition) per partition)"
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
