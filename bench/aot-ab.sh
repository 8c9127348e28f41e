#!/usr/bin/env bash
# Native AOT vs JIT `sluice serve`, side by side (docs/benchmarks.md, "Native AOT"): ROUNDS rounds of bench/ab.sh on
# rows A (-n 30000 --pub-batch 1), B (-n 300000 --pub-batch 100) and C (MODE=consumer -n 200000), the JIT and the AOT
# server alternating (which goes first flips every round); the client is the same sluice-bench for both. Then the
# medians per row and variant, and the median of the per-round AOT/JIT ratios, plus the CLI's own start
# (`sluice version`, STARTS runs each, alternating).
#
# usage: bench/aot-ab.sh [checkout]      (build first: dotnet build Sluice.slnx -c Release; scripts/publish-aot.sh)
#   ROUNDS=3 RUNS=3 bench/aot-ab.sh .
#   AOT_BIN=/path/to/sluice bench/aot-ab.sh .    (default: the checkout's artifacts/aot/linux-x64/sluice)
#   ROWS="B" ROUNDS=5 bench/aot-ab.sh .          (only some rows)
set -u
repo=$(cd "${1:-.}" && pwd)
ROUNDS=${ROUNDS:-3}
STARTS=${STARTS:-10}
export RUNS=${RUNS:-3}
jit=$repo/src/Sluice.Cli/bin/Release/net10.0/sluice
aot=${AOT_BIN:-$repo/artifacts/aot/linux-x64/sluice}
for b in "$jit" "$aot"; do [ -x "$b" ] || { echo "missing $b (build or publish it first)" >&2; exit 1; }; done
log=$(mktemp)
rows=("A||-n 30000 --pub-batch 1" "B||-n 300000 --pub-batch 100" "C|consumer|-n 200000")
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="jit aot"; else order="aot jit"; fi
  for row in "${rows[@]}"; do
    name=${row%%|*}; rest=${row#*|}; mode=${rest%%|*}; args=${rest#*|}
    case " ${ROWS:-A B C} " in *" $name "*) ;; *) continue ;; esac
    echo "round $round row $name ($(cut -d' ' -f1-3 /proc/loadavg))"
    for v in $order; do
      if [ "$v" = jit ]; then bin=$jit; else bin=$aot; fi
      # shellcheck disable=SC2086
      MODE=${mode:-producer} SERVER_BIN=$bin "$repo/bench/ab.sh" "$repo" "$name-$v" $args | sed "s/^/r$round /" | tee -a "$log"
    done
  done
done

# the CLI's start: spawn to exit of `sluice version`, alternating
starts=$(mktemp)
for i in $(seq "$STARTS"); do
  for v in jit aot; do
    if [ "$v" = jit ]; then bin=$jit; else bin=$aot; fi
    t0=$(date +%s%N); "$bin" version >/dev/null; echo "$v $(( ($(date +%s%N) - t0) / 1000000 ))" >>"$starts"
  done
done

python3 - "$log" "$starts" <<'PY'
import re, sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"r(\d+) (\w)-(jit|aot)\s+msg/s max/med [\d,]+/([\d,]+)\s+srv us min/med [\d.]+/([\d.]+).*rss MiB [\d.]+/([\d.]+)\s+start ms (\d+)\s+idle rss MiB ([\d.]+)", line)
    if not m:
        continue
    rnd, row, v = int(m[1]), m[2], m[3]
    rows.setdefault(row, {}).setdefault(v, {})[rnd] = dict(
        rate=float(m[4].replace(",", "")), srv=float(m[5]), peak=float(m[6]), start=float(m[7]), idle=float(m[8]))
print()
print("row  variant  msg/s (median of round medians)  srv us/msg  peak RSS MiB  idle RSS MiB  serve start ms")
for row in sorted(rows):
    for v in ("jit", "aot"):
        rs = rows[row].get(v, {}).values()
        if not rs:
            continue
        med = lambda k: st.median(r[k] for r in rs)
        print(f"{row}    {v:7}  {med('rate'):>12,.0f}                     {med('srv'):>8.1f}  {med('peak'):>12.1f}  {med('idle'):>12.1f}  {med('start'):>14.0f}")
    both = [r for r in rows[row].get("jit", {}) if r in rows[row].get("aot", {})]
    if both:
        ratio = lambda k: st.median(rows[row]["aot"][r][k] / rows[row]["jit"][r][k] for r in both)
        rr = [rows[row]["aot"][r]["rate"] / rows[row]["jit"][r]["rate"] for r in both]
        print(f"{row}    aot/jit  rate {ratio('rate'):.2f} (rounds {', '.join(f'{x:.2f}' for x in rr)})  srv us {ratio('srv'):.2f}  peak RSS {ratio('peak'):.2f}  idle RSS {ratio('idle'):.2f}  start {ratio('start'):.2f}")
s = {"jit": [], "aot": []}
for line in open(sys.argv[2]):
    v, ms = line.split()
    s[v].append(int(ms))
print(f"`sluice version` wall ms, median of {len(s['jit'])}: jit {st.median(s['jit'])}  aot {st.median(s['aot'])}  ratio {st.median(s['aot']) / st.median(s['jit']):.2f}")
PY
rm -f "$log" "$starts"
