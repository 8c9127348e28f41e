#!/usr/bin/env bash
# A/B of Sluice builds as 3-broker clusters, side by side: one warm cluster (etcd + b1..b3, as bench/cluster.sh starts
# them: Release, storage.durability never) per variant, all started first and warmed up (30,000 windowed and 3,000
# synchronous ALL publishes each, so the JIT has settled), then every round runs each shape on each variant in turn
# on a fresh RF 3 / ack ALL / min ISR 1 stream. Prints msgs/s, p99 and the three brokers' CPU per message per run.
# Everything started is stopped by PID on exit.
#
# usage: VARIANTS="base:/work/wt-base new:." bench/cluster-ab.sh [ROUNDS]
#   each variant is LABEL:CHECKOUT (a built checkout: src/Sluice.Cli and bench/Sluice.Bench in Release)
# Environment: SHAPES ("sync windowed"), SYNC_N (5000), WIN_N (100000), WINDOW (100), ETCD.
set -euo pipefail
rounds="${1:-3}"
build=0
started=()
etcds=()
trap 'for p in "${started[@]}" "${etcds[@]}"; do stop_pid "$p"; done' EXIT
declare -A servers pids benches
for spec in ${VARIANTS:?set VARIANTS, e.g. \"base:/work/wt-base new:.\"}; do
  name="${spec%%:*}"
  repo="$(cd "${spec#*:}" && pwd)"
  source "$(dirname "$0")/common.sh"
  build_tools cluster-ab
  work="$(mktemp -d "/tmp/cluster-ab.$name.XXXX")"
  start_etcd "$work"
  etcds+=("$etcd_pid")
  printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
  start_sluice_brokers "$work" "$work/sluice.yaml" warn
  wait_rf3_stream "$work/ready.log" -s "$brokers"
  "$bench" producer -s "$brokers" --stream warm --subject warm --create-stream --delete-stream --replication-factor 3 \
    --ack-policy all -n 30000 --pb 100 --ms 256 --timeout 300 >/dev/null 2>&1
  "$bench" producer -s "$brokers" --stream warm1 --subject warm1 --create-stream --delete-stream --replication-factor 3 \
    --ack-policy all -n 3000 --pb 1 --ms 256 --timeout 300 >/dev/null 2>&1
  servers[$name]="$brokers"; pids[$name]="${broker_pids[*]}"; benches[$name]="$bench"
  echo "$name ($repo): brokers $brokers, logs in $work" >&2
done

ticks() { local t=0 p; for p in $1; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
for r in $(seq 1 "$rounds"); do
  for shape in ${SHAPES:-sync windowed}; do
    for spec in $VARIANTS; do
      name="${spec%%:*}"
      if [ "$shape" = sync ]; then n="${SYNC_N:-5000}"; pb=1; else n="${WIN_N:-100000}"; pb="${WINDOW:-100}"; fi
      before="$(ticks "${pids[$name]}")"
      json="$("${benches[$name]}" producer -s "${servers[$name]}" --stream "ab$r$shape" --subject "ab$r$shape" --create-stream \
        --delete-stream --replication-factor 3 --ack-policy all -n "$n" --pb "$pb" --ms 256 --warmup "$((n / 10))" --timeout 900 --output json)"
      after="$(ticks "${pids[$name]}")"
      python3 - "$r" "$shape" "$name" "$n" "$before" "$after" "$json" <<'PY'
import json, os, sys
r, shape, name, n, before, after, raw = sys.argv[1:]
j = json.loads(raw)
hz = os.sysconf("SC_CLK_TCK")
cpu = (int(after) - int(before)) / hz * 1e6 / (int(n) * 1.1)
p99 = j.get("latency_us", {}).get("p99")
p99 = f"{p99 / 1000:.2f}" if p99 is not None else "-"
print(f"round {r} {shape:8} {name:10} {j['msgs_per_sec']:>10,.0f} msgs/s  p99 {p99:>6} ms  brokers cpu {cpu:7.1f} us/msg  load {open('/proc/loadavg').read().split()[0]}")
PY
    done
  done
done
