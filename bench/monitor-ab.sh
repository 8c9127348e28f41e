#!/usr/bin/env bash
# The cost of the monitoring port on throughput rows B-D (docs/benchmarks.md, "Monitoring port"): runs bench/ab.sh
# on one checkout with `monitor.listen` off and on, alternating, ROUNDS times (default 2). With it on, /metrics
# is scraped every second during the runs (curl), as a Prometheus would but more often.
#
# usage: bench/monitor-ab.sh [checkout]     (build it first: dotnet build src/Sluice.Cli -c Release; dotnet build bench/Sluice.Bench -c Release)
#   ROUNDS=3 RUNS=3 bench/monitor-ab.sh .
#   ROWS="C" ROUNDS=4 bench/monitor-ab.sh .    # only some rows
#   BASE=/tmp/sluice-base bench/monitor-ab.sh .  # also a checkout without the monitoring code (e.g. git archive of the parent commit, built), first in each round
set -u
repo=$(cd "${1:-.}" && pwd)
ROUNDS=${ROUNDS:-2}
export RUNS=${RUNS:-3}
rows=("B|-n 100000 --pub-batch 100" "C|-n 200000 --pub-batch 100 -c 4" "D|-n 60000 --pub-batch 1 -c 64")
for round in $(seq "$ROUNDS"); do
  for row in "${rows[@]}"; do
    name=${row%%|*}; args=${row#*|}
    case " ${ROWS:-B C D} " in *" $name "*) ;; *) continue ;; esac
    echo "round $round row $name ($(cut -d' ' -f1-3 /proc/loadavg))"
    if [ -n "${BASE:-}" ]; then
      # shellcheck disable=SC2086
      "$repo/bench/ab.sh" "$BASE" "$name-base" $args
    fi
    # shellcheck disable=SC2086
    "$repo/bench/ab.sh" "$repo" "$name-off" $args
    mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    (while true; do curl -s -o /dev/null "http://127.0.0.1:$mport/metrics"; sleep 1; done) &
    scraper=$!
    # shellcheck disable=SC2086
    SERVER_ENV="SLUICE_MONITOR_LISTEN=127.0.0.1:$mport" "$repo/bench/ab.sh" "$repo" "$name-on" $args
    kill "$scraper"; wait "$scraper" 2>/dev/null
  done
done
