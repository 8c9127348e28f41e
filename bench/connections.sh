#!/usr/bin/env bash
# Idle client connections: what N open, quiet HTTP/2 connections cost `sluice serve` in threads and memory, and
# whether it still serves a publish and a read while it holds them.
#
# For each count, starts `sluice serve` (Release, storage.durability never, grpc.max.connections and the per-address
# cap raised past the count) on a free 127.0.0.1 port with a fresh temp data dir, records its idle threads and RSS,
# opens the connections with bench/idle_connections.py (preface, SETTINGS, PING answers; source addresses 127.0.0.1,
# 127.0.0.2, ... past 20,000), waits --settle seconds, records the server's threads, RSS (VmRSS) and peak RSS (VmHWM)
# from /proc, times a publish and a subscribe with sluice-bench while the connections stay open, then closes them and
# stops the server by PID.
#
# usage: bench/connections.sh [--counts "1000 10000"] [--settle S] [--sluice PATH] [--no-build] [--keep]
#   --counts "N ..."  connection counts, one server each (default "1000 10000")
#   --settle S        seconds to wait after the last connection opened (default 10)
#   --sluice PATH     the sluice executable to measure (default: this checkout's Release build)
#   --keep            keep the temp dir (logs) and print its path
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
COUNTS="1000 10000"
SETTLE=10
SLUICE=""
build=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --counts) COUNTS="$2"; shift 2 ;;
    --settle) SETTLE="$2"; shift 2 ;;
    --sluice) SLUICE="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --keep) keep=1; shift ;;
    *) echo "usage: $0 [--counts \"N ...\"] [--settle S] [--sluice PATH] [--no-build] [--keep]" >&2; exit 2 ;;
  esac
done

# shellcheck source=bench/common.sh
source "$repo/bench/common.sh"
build_tools connections.sh
[ -n "$SLUICE" ] && sluice="$SLUICE"

work="$(mktemp -d /tmp/sluice-connections.XXXXXX)"
sluice_pid=""
opener_pid=""
cleanup() {
  [ -n "$opener_pid" ] && kill "$opener_pid" 2>/dev/null || true
  stop_pid "$sluice_pid"
  if [ "$keep" -eq 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

status_of() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# The server holds one socket per connection, the opener another: room for both, and for the server's files.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

printf '%-8s %8s %8s %10s %10s %10s %s\n' connections open threads rss_mib hwm_mib idle_rss publish+read
for count in $COUNTS; do
  run="$work/$count"
  mkdir -p "$run/cwd" "$run/data"
  printf 'storage:\n  durability: never\ngrpc:\n  max:\n    connections: %d\n    connections.per.address: %d\n' \
    $((count + 100)) $((count + 100)) >"$run/sluice.yaml"
  port="$(free_port)"
  (cd "$run/cwd" && exec "$sluice" serve --port "$port" --host 127.0.0.1 --data-dir "$run/data" -c "$run/sluice.yaml" --level warn) >"$run/sluice.log" 2>&1 &
  sluice_pid=$!
  wait_listening "$sluice_pid" "$port" sluice "$run/sluice.log" 60
  sleep 2
  idle_rss=$(( $(status_of "$sluice_pid" VmRSS) / 1024 ))

  mkfifo "$run/hold"
  python3 "$repo/bench/idle_connections.py" --port "$port" --count "$count" <"$run/hold" >"$run/opener.txt" 2>"$run/opener.err" &
  opener_pid=$!
  exec 7>"$run/hold" # holds the opener's stdin open; closing it ends the opener
  for _ in $(seq 1 1200); do grep -q '^open' "$run/opener.txt" && break; kill -0 "$opener_pid" 2>/dev/null || break; sleep 0.5; done
  opened=$(sed -n 's/^open //p' "$run/opener.txt")
  sleep "$SETTLE"
  threads=$(status_of "$sluice_pid" Threads)
  rss=$(( $(status_of "$sluice_pid" VmRSS) / 1024 ))
  hwm=$(( $(status_of "$sluice_pid" VmHWM) / 1024 ))

  started=$(date +%s.%N)
  served=no
  if "$bench" producer -s "127.0.0.1:$port" --stream idle-check --subject idle-check -n 1000 --pb 256 --create-stream >"$run/producer.txt" 2>&1 \
    && "$bench" consumer -s "127.0.0.1:$port" --stream idle-check -n 1000 >"$run/consumer.txt" 2>&1; then
    served=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN {printf "yes (%.2f s)", e - s}')
  fi
  printf '%-8s %8s %8s %10s %10s %10s %s\n' "$count" "${opened:-0}" "$threads" "$rss" "$hwm" "$idle_rss" "$served"

  exec 7>&-
  wait "$opener_pid" 2>/dev/null || true
  opener_pid=""
  closed=$(sed -n 's/^closed-by-server //p' "$run/opener.txt")
  [ "${closed:-0}" != 0 ] && echo "  the server closed $closed idle connections while they were held" >&2
  stop_pid "$sluice_pid"
  sluice_pid=""
done
echo "load average $(cut -d' ' -f1-3 /proc/loadavg)"
