#!/usr/bin/env bash
# Consumer groups: a group of --members consumers (Sluice's .NET SluiceConsumer, one client each) drains --messages
# messages from a --partitions stream, then one more member joins and one leaves while a light publisher keeps every
# partition busy (sluice-bench group, bench/Sluice.Bench/Runs/GroupMode.cs).
#
# Starts `sluice serve` (Release, storage.durability never, as compare.sh) on a free 127.0.0.1 port with a fresh temp
# data dir, fills the stream once with `sluice-bench producer` (256-byte messages), then runs the group mode --runs
# times, each with a new group reading the whole stream from the start. Prints each run's lines, the medians and the
# load average. The server is stopped by PID on exit, error or Ctrl-C.
#
# usage: bench/groups.sh [--runs N] [--messages N] [--partitions N] [--members N] [--fetch-interval-ms N] [--no-build] [--keep]
#   --runs N               group runs (default 3)
#   --messages N           messages in the stream, drained by each run (default 1000000)
#   --partitions N         (default 8)
#   --members N            members that drain it; the join makes one more (default 4)
#   --fetch-interval-ms N  the members' assignment fetch interval (default: the consumer's, 0.4 x groups.consumer.timeout)
#   --keep                 keep the temp dir (logs) and print its path
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=3
MESSAGES=1000000
PARTITIONS=8
MEMBERS=4
FETCH=()
build=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --partitions) PARTITIONS="$2"; shift 2 ;;
    --members) MEMBERS="$2"; shift 2 ;;
    --fetch-interval-ms) FETCH=(--fetch-interval-ms "$2"); shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--runs N] [--messages N] [--partitions N] [--members N] [--fetch-interval-ms N] [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"
build_tools groups.sh

work="$(mktemp -d /tmp/sluice-groups.XXXXXX)"
sluice_pid=""
cleanup() {
  stop_pid "$sluice_pid"
  if [ "$keep" -eq 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

mkdir -p "$work/run" "$work/data"
printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
port="$(free_port)"
# From an empty directory beside its data dir, as compare.sh (the config watcher covers the working directory).
(cd "$work/run" && exec "$sluice" serve --port "$port" --host 127.0.0.1 --data-dir "$work/data" -c "$work/sluice.yaml" --level warn) >"$work/sluice.log" 2>&1 &
sluice_pid=$!
wait_listening "$sluice_pid" "$port" sluice "$work/sluice.log" 60
servers="127.0.0.1:$port"

echo "filling: $MESSAGES messages into $PARTITIONS partitions" >&2
"$bench" producer -s "$servers" --stream groups-bench --subject groups-bench -p "$PARTITIONS" -n "$MESSAGES" \
  -c 4 --pb 256 --ack-policy leader --create-stream >"$work/producer.txt"
grep -iE "msgs/s|throughput" "$work/producer.txt" | head -3 >&2 || true

for i in $(seq 1 "$RUNS"); do
  echo "run $i (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  "$bench" group -s "$servers" --stream groups-bench -n "$MESSAGES" -c "$MEMBERS" "${FETCH[@]}" | tee "$work/run-$i.txt"
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "-"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
echo
echo "medians over $RUNS runs ($MEMBERS members, $PARTITIONS partitions, $MESSAGES messages; load average $(cut -d' ' -f1-3 /proc/loadavg)):"
echo "  drain msgs/s:        $(cat "$work"/run-*.txt | sed -n 's/.*= \([0-9]*\) msgs\/s.*/\1/p' | median)"
echo "  rebalance on join s: $(cat "$work"/run-*.txt | sed -n 's/rebalance on join: \([0-9.]*\) s.*/\1/p' | median)"
echo "  rebalance on leave s: $(cat "$work"/run-*.txt | sed -n 's/rebalance on leave: \([0-9.]*\) s.*/\1/p' | median)"
