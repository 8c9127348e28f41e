#!/usr/bin/env bash
# A follower that comes back after a long absence: does its catch-up stall the leader?
#
# Starts one etcd and 3 `sluice serve --etcd-endpoints` brokers b1..b3 (Release, storage.durability never,
# as cluster.sh) on 127.0.0.1 with free ports and fresh temp data dirs, and one RF 3 stream (min ISR 2).
# Then, --runs times:
#   1. before: one publisher at a time, synchronous (one publish awaited), --probe messages with ack
#      LEADER, then --probe with ack ALL: the leader's ack latency with every follower in sync;
#   2. a follower (never the leader) is stopped with SIGTERM, and --backlog messages are published
#      (--window in flight, ack LEADER) while it is down;
#   3. during: the follower is started again with the same id and data dir; once it listens (its own
#      start-up is not counted), two synchronous publishers run side by side, --probe-during messages
#      each, one LEADER and one ALL, while the script polls the ISR; the catch-up time is from the
#      follower listening to it being back in the ISR. The summary says how much of each publisher's
#      run fell inside the catch-up.
# Prints p50/p99 of each publisher before and during, the catch-up time, the backlog in MB, and the
# load average. Everything started is stopped by PID on exit, error or Ctrl-C.
#
# usage: bench/catchup.sh [--runs N] [--backlog N] [--probe N] [--probe-during N] [--window W] [--ms BYTES]
#                         [--no-build] [--out FILE] [--keep]
#   --runs N      rounds (default 3)
#   --backlog N   messages published while the follower is down (default 300000)
#   --probe N     messages per synchronous probe publisher before the stop (default 3000)
#   --probe-during N  messages per synchronous probe publisher during the catch-up (default 10000)
#   --window W    publishes in flight for the backlog (default 200)
#   --ms BYTES    message size (default 256)
#   --out FILE    also write the summary (markdown) to FILE
#   --keep        keep the temp dir (logs) and print its path
# Environment: ETCD (the etcd binary), SLUICE_EXTRA_CONFIG (YAML appended to every broker's config)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
RUNS=3
BACKLOG=300000
PROBE=3000
PROBE_DURING=10000
WINDOW=200
MS=256
build=1
out=""
keep=0
ETCD="${ETCD:-$(command -v etcd || echo /usr/bin/etcd)}"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS="$2"; shift ;;
    --backlog) BACKLOG="$2"; shift ;;
    --probe) PROBE="$2"; shift ;;
    --probe-during) PROBE_DURING="$2"; shift ;;
    --window) WINDOW="$2"; shift ;;
    --ms) MS="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "catchup.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

[ -x "$ETCD" ] || { echo "catchup.sh: etcd not found (apt-get install -y etcd-server, or set ETCD)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "catchup.sh: python3 is needed" >&2; exit 1; }

# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
build_tools catchup.sh

work="$(mktemp -d -t sluice-catchup-XXXXXX)"
etcd_pid=""
declare -A pid port

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  for b in b1 b2 b3; do stop_pid "${pid[$b]:-}"; done
  stop_pid "$etcd_pid"
  if [ "$keep" -eq 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

now_us() { date +%s%6N; }
wait_port() { wait_listening "$1" "$2" "$3" "$work/$3.log"; } # pid port name

start_etcd "$work" # common.sh: sets etcd_pid and etcd_url

printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
[ -n "${SLUICE_EXTRA_CONFIG:-}" ] && printf '%s\n' "$SLUICE_EXTRA_CONFIG" >>"$work/sluice.yaml"
start_broker() { # id
  start_sluice_broker "$1" "${port[$1]}" "$work" "$work/sluice.yaml" info # common.sh
  pid[$1]=$broker_pid
}
for b in b1 b2 b3; do port[$b]="$(free_port)"; start_broker "$b"; done
for b in b1 b2 b3; do wait_port "${pid[$b]}" "${port[$b]}" "$b"; done
servers="127.0.0.1:${port[b1]},127.0.0.1:${port[b2]},127.0.0.1:${port[b3]}"
echo "etcd $etcd_url (pid $etcd_pid); b1 ${port[b1]}, b2 ${port[b2]}, b3 ${port[b3]}; logs in $work" >&2

ready=0
for _ in $(seq 1 60); do
  if "$bench" producer -s "$servers" --stream catchup --subject catchup --create-stream --replication-factor 3 --min-isr 2 \
      --ack-policy all -n 10 --timeout 30 >"$work/create.log" 2>&1; then ready=1; break; fi
  sleep 1
done
[ "$ready" -eq 1 ] || { echo "catchup.sh: the cluster did not accept an RF 3 stream within 60 s:" >&2; cat "$work/create.log" >&2; exit 1; }

state() { "$bench" partition-state -s "$servers" --stream catchup 2>/dev/null || true; }
field() { python3 -c 'import json,sys
try: j=json.loads(sys.stdin.read())
except Exception: sys.exit(0)
v=j.get(sys.argv[1])
print(",".join(v) if isinstance(v, list) else (v or ""))' "$1"; }
isr_size() { state | field isr | tr ',' '\n' | grep -c . || true; }
wait_full_isr() { # timeout seconds
  local deadline=$(( $(now_us) + $1 * 1000000 ))
  until [ "$(isr_size)" -eq 3 ]; do
    [ "$(now_us)" -gt "$deadline" ] && { echo "catchup.sh: ISR not full after $1 s: $(state)" >&2; return 1; }
    sleep 0.1
  done
}
# One synchronous publisher; writes its JSON result to $2.
probe() { # ack-policy out.json messages
  "$bench" producer -s "$servers" --stream catchup --ack-policy "$1" -n "$3" --pb 1 --ms "$MS" \
    --timeout 600 --output json >"$2" 2>"$2.err"
  date +%s%6N >"$2.end"
}
lat() { python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); l=j.get("latency_us") or {}; print(l.get("p50",0), l.get("p99",0), j.get("errors",0), round(j["msgs_per_sec"]))' "$1"; }

: >"$work/runs.tsv"
wait_full_isr 60
for r in $(seq 1 "$RUNS"); do
  leader="$(state | field leader)"
  follower=""
  for b in b3 b2 b1; do [ "$b" != "$leader" ] && { follower="$b"; break; }; done
  load_before="$(cut -d' ' -f1 /proc/loadavg)"
  probe leader "$work/before-leader.json" "$PROBE"
  probe all "$work/before-all.json" "$PROBE"

  stop_pid "${pid[$follower]}"
  until [ "$(isr_size)" -eq 2 ]; do sleep 0.1; done
  "$bench" producer -s "$servers" --stream catchup --ack-policy leader -n "$BACKLOG" --pb "$WINDOW" --ms "$MS" \
    --timeout 900 --output json >"$work/backlog.json" 2>"$work/backlog.err" || { cat "$work/backlog.err" >&2; exit 1; }

  load_during="$(cut -d' ' -f1 /proc/loadavg)"
  start_broker "$follower"
  wait_port "${pid[$follower]}" "${port[$follower]}" "$follower"
  t_start="$(now_us)"
  probe leader "$work/during-leader.json" "$PROBE_DURING" & p1=$!
  probe all "$work/during-all.json" "$PROBE_DURING" & p2=$!
  # The follower's log size every half second: the catch-up's pace.
  (while :; do echo "$(( ($(now_us) - t_start) / 1000 )) $(du -sb "$work/$follower/data/streams" | cut -f1)"; sleep 0.5; done) >"$work/growth-$r.log" & sampler=$!
  wait_full_isr 300
  t_isr="$(now_us)"
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  wait "$p1" "$p2"
  catchup_ms=$(( (t_isr - t_start) / 1000 ))
  # How long each probe ran past the catch-up (its start-up and first publishes fall inside it).
  probes_ms="$(( ($(cat "$work/during-leader.json.end") - t_start) / 1000 ))/$(( ($(cat "$work/during-all.json.end") - t_start) / 1000 ))"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$leader" "$follower" "$catchup_ms" "$probes_ms" \
    "$(lat "$work/before-leader.json")" "$(lat "$work/before-all.json")" "$(lat "$work/during-leader.json")" "$(lat "$work/during-all.json")" \
    "$load_before $load_during" >>"$work/runs.tsv"
  echo "run $r: leader $leader, follower $follower; back in the ISR $catchup_ms ms after it listened (LEADER/ALL probes ended $probes_ms ms after it); before LEADER/ALL p50 p99 us: $(lat "$work/before-leader.json" | cut -d' ' -f1,2) / $(lat "$work/before-all.json" | cut -d' ' -f1,2); during: $(lat "$work/during-leader.json" | cut -d' ' -f1,2) / $(lat "$work/during-all.json" | cut -d' ' -f1,2); load $load_before, $load_during" >&2
done

summary="$(python3 - "$work/runs.tsv" "$BACKLOG" "$MS" "$PROBE" "$PROBE_DURING" <<'PY'
import sys, statistics as st
path, backlog, ms, probe, probe_during = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
def col(i, k): return [float(r[i].split()[k]) for r in rows]
mb = int(backlog) * (int(ms) + 40) / 1e6  # payload plus the record header, roughly
out = [f"{len(rows)} runs; backlog {int(backlog):,} messages of {ms} bytes (~{mb:.0f} MB) published while one follower was down; "
       f"probes: synchronous publishers, one ack LEADER and one ack ALL, {probe} publishes each before and {probe_during} each during; RF 3, min ISR 2", "",
       "| | LEADER p50 ms | LEADER p99 ms | ALL p50 ms | ALL p99 ms | errors |", "|---|---:|---:|---:|---:|---:|"]
for name, li, ai in [("before (all in sync)", 5, 6), ("during catch-up", 7, 8)]:
    out.append(f"| {name} | {st.median(col(li,0))/1000:.2f} | {st.median(col(li,1))/1000:.2f} | {st.median(col(ai,0))/1000:.2f} | {st.median(col(ai,1))/1000:.2f} | {int(sum(col(li,2)) + sum(col(ai,2)))} |")
cu = [int(r[3]) for r in rows]
pr = [r[4] for r in rows]
out += ["", f"follower listening → back in the ISR (catch-up): median {st.median(cu):,.0f} ms (each: {' / '.join(f'{x:,}' for x in cu)}); the LEADER/ALL probes ended {' ; '.join(pr)} ms after it listened",
        f"load average before/during per run: {'; '.join(r[9] for r in rows)}"]
print("\n".join(out))
PY
)"
echo
echo "$summary"
[ -n "$out" ] && echo "$summary" >"$out"
exit 0
