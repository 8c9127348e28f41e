#!/usr/bin/env bash
# Sluice vs NATS JetStream (and Liftbridge, given its binary), side by side, with one tool
# (sluice-bench) and the same payloads.
#
# Starts nats-server with JetStream (file storage) and `sluice serve` (Release, storage.durability
# never: JetStream does not fsync per message either) on 127.0.0.1 with free ports and fresh temp
# data dirs, warms them up, then runs every row RUNS times per system, rotating which system goes
# first, and prints medians, the Sluice/JetStream ratio, each server's CPU time per message and its
# peak memory. A run during which hypervisor steal exceeded MAX_STEAL % is repeated (up to 3 tries).
# Everything started is stopped by PID on exit, error or Ctrl-C.
#
# With a Liftbridge binary (--liftbridge PATH or LIFTBRIDGE_BIN; v1.9.0: `go install
# github.com/liftbridge-io/liftbridge@v1.9.0`) Liftbridge is a third system: one server with NATS
# embedded in its process (so its CPU and memory are in the Liftbridge column), default storage
# settings (Liftbridge never fsyncs its log), driven through its gRPC API exactly as Sluice is, and
# every row gets a Sluice/Liftbridge ratio too.
#
# Publishers share one client connection, as the goroutines of Liftbridge's bench tool share one
# client (and one connection per target, so both systems get the same topology); row F repeats D with
# a connection per publisher, as 64 separate processes would publish.
#
# usage: bench/compare.sh [--quick] [--rows ABCDEF] [--runs N] [--no-build] [--out FILE] [--liftbridge PATH]
#   --quick      small rows (A 20k, B/C 100k, D/F 50k, E 100k messages) for a smoke run
#   --rows       which rows to run (default ABCDEF)
#   --out FILE   also write the summary (markdown) to FILE
#   --liftbridge PATH  also run the Liftbridge server at PATH (default: $LIFTBRIDGE_BIN, if set)
# Row sizes (messages) and knobs can be set in the environment:
#   ROW_A=200000 ROW_B=1000000 ROW_C=1000000 ROW_D=500000 ROW_E=1000000 ROW_F=300000
#   RUNS=3 MESSAGE_SIZE=256 MAX_STEAL=3 NATS_SERVER=/usr/sbin/nats-server WARMUP=1 LIFTBRIDGE_BIN=
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
rows="ABCDEF"
build=1
out=""
quick=0
liftbridge="${LIFTBRIDGE_BIN:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --rows) rows="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --liftbridge) liftbridge="$2"; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" -eq 1 ]; then
  : "${ROW_A:=20000}" "${ROW_B:=100000}" "${ROW_C:=100000}" "${ROW_D:=50000}" "${ROW_E:=100000}" "${ROW_F:=50000}"
fi
ROW_A="${ROW_A:-200000}"
ROW_B="${ROW_B:-1000000}"
ROW_C="${ROW_C:-1000000}"
ROW_D="${ROW_D:-500000}"
ROW_E="${ROW_E:-1000000}"
ROW_F="${ROW_F:-300000}"
RUNS="${RUNS:-3}"
MESSAGE_SIZE="${MESSAGE_SIZE:-256}"
MAX_STEAL="${MAX_STEAL:-3}"
NATS_SERVER="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
RUN_TIMEOUT=1800

[ -x "$NATS_SERVER" ] || { echo "compare.sh: nats-server not found (apt-get install -y nats-server, or set NATS_SERVER)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed for the summary" >&2; exit 1; }
if [ -n "$liftbridge" ] && [ ! -x "$liftbridge" ]; then
  echo "compare.sh: Liftbridge binary '$liftbridge' is not executable (go install github.com/liftbridge-io/liftbridge@v1.9.0)" >&2; exit 1
fi
systems="jetstream sluice"
[ -n "$liftbridge" ] && systems="jetstream sluice liftbridge"

# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
build_tools compare.sh

work="$(mktemp -d -t sluice-compare-XXXXXX)"
nats_pid=""
sluice_pid=""
lb_pid=""

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$lb_pid"
  stop_pid "$sluice_pid"
  stop_pid "$nats_pid"
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() { # pid port name
  for _ in $(seq 1 300); do
    kill -0 "$1" 2>/dev/null || { echo "compare.sh: $3 exited during startup:" >&2; cat "$work/$3.log" >&2; exit 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "compare.sh: $3 did not listen on 127.0.0.1:$2 within 30 s" >&2; exit 1
}

nats_port="$(free_port)"
sluice_port="$(free_port)"
mkdir -p "$work/js" "$work/sluice" "$work/run" "$work/results"
printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"

"$NATS_SERVER" -js -sd "$work/js" -p "$nats_port" -a 127.0.0.1 >"$work/nats.log" 2>&1 &
nats_pid=$!
# The server runs from an empty directory beside (not above) its data dir: ASP.NET Core's config
# file watcher covers the working directory recursively, and would otherwise see every log write.
(cd "$work/run" && exec "$sluice" serve --port "$sluice_port" --host 127.0.0.1 --data-dir "$work/sluice" -c "$work/sluice.yaml" --level warn) >"$work/sluice.log" 2>&1 &
sluice_pid=$!
wait_port "$nats_pid" "$nats_port" nats
wait_port "$sluice_pid" "$sluice_port" sluice

if [ -n "$liftbridge" ]; then
  lb_port="$(free_port)"
  lb_nats_port="$(free_port)"
  mkdir -p "$work/lb/data" "$work/lb/run"
  printf 'listen: 127.0.0.1:%s\n' "$lb_nats_port" >"$work/lb/nats.conf"
  # One node, its own Raft, NATS embedded in the same process; storage settings are Liftbridge's
  # defaults (no fsync policy exists: plain writes, as nats-server and Sluice with durability never).
  cat >"$work/lb/liftbridge.yaml" <<LBCONF
listen: 127.0.0.1:$lb_port
host: 127.0.0.1
port: $lb_port
data.dir: $work/lb/data
logging.level: warn
nats.embedded.config: $work/lb/nats.conf
nats.servers:
  - nats://127.0.0.1:$lb_nats_port
clustering:
  server.id: compare
  raft.bootstrap.seed: true
LBCONF
  (cd "$work/lb/run" && exec "$liftbridge" --config "$work/lb/liftbridge.yaml" --embedded-nats) >"$work/liftbridge.log" 2>&1 &
  lb_pid=$!
  wait_port "$lb_pid" "$lb_port" liftbridge
fi

nats_version="$("$NATS_SERVER" --version 2>&1 | head -1)"
sluice_version="$("$sluice" --version 2>&1 | head -1 || true)"
sluice_commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dotnet_version="$(dotnet --version)"
lb_version=""
[ -n "$liftbridge" ] && lb_version="$("$liftbridge" --version 2>&1 | head -1)"
echo "nats-server: $nats_version (pid $nats_pid, port $nats_port); sluice: $sluice_version @ $sluice_commit (pid $sluice_pid, port $sluice_port); .NET SDK $dotnet_version" >&2
[ -n "$liftbridge" ] && echo "liftbridge: $lb_version (pid $lb_pid, port $lb_port, embedded NATS on $lb_nats_port)" >&2
echo "load: $(uptime)" >&2

# bench <system> <args...>: one run of the tool against a system, JSON on stdout.
bench() {
  local system="$1"; shift
  case "$system" in
    jetstream)
      "$bench" "$@" --target jetstream --servers "nats://127.0.0.1:$nats_port" --server-pid "$nats_pid" \
        --ms "$MESSAGE_SIZE" --timeout "$RUN_TIMEOUT" --output json ;;
    sluice)
      "$bench" "$@" --target sluice --servers "127.0.0.1:$sluice_port" --server-pid "$sluice_pid" \
        --ms "$MESSAGE_SIZE" --timeout "$RUN_TIMEOUT" --output json ;;
    liftbridge) # the same client and code path as Sluice: Liftbridge's gRPC API
      "$bench" "$@" --target sluice --servers "127.0.0.1:$lb_port" --server-pid "$lb_pid" \
        --ms "$MESSAGE_SIZE" --timeout "$RUN_TIMEOUT" --output json ;;
  esac
}

# A fresh Liftbridge listens before its Raft has elected itself metadata leader ("no known
# metadata leader"); wait until a stream can be created, for at most 60 s.
if [ -n "$liftbridge" ]; then
  for try in $(seq 1 60); do
    if bench liftbridge producer --stream ready --subject ready --create-stream --delete-stream -n 1 >/dev/null 2>"$work/err.txt"; then
      break
    fi
    [ "$try" -eq 60 ] && { echo "compare.sh: Liftbridge did not accept a stream within 60 s:" >&2; cat "$work/err.txt" "$work/liftbridge.log" >&2; exit 1; }
    sleep 1
  done
fi

cat >"$work/report.py" <<'PY'
import glob, json, os, statistics, sys

def load_file(path):
    with open(path) as f:
        return json.load(f)

def steal(path, limit):
    """Exit 0 when the run's steal is within the limit."""
    d = load_file(path)
    value = d.get("steal_percent") or 0
    print(f"{value:.2f}")
    sys.exit(0 if value <= float(limit) else 1)

def line(path, row, run, system):
    d = load_file(path)
    lat = d["latency_us"] or {}
    print(f"  row {row} run {run} {system:10} {d['msgs_per_sec']:>11,.0f} msgs/s  p99 {lat.get('p99', '-')} us  "
          f"server cpu {d['server']['cpu_us_per_msg']:.2f} us/msg  rss {d['server']['peak_rss_kb'] / 1024:.0f} MiB  "
          f"client cpu {d['client']['cpu_us_per_msg']:.2f} us/msg  steal {d['steal_percent'] or 0:.2f}%")

NAMES = {
    "A": "A: 1 publisher, synchronous",
    "B": "B: 1 publisher, 100 in flight",
    "C": "C: 4 publishers, 100 in flight each",
    "D": "D: 64 publishers, synchronous",
    "E": "E: consume from the start",
    "F": "F: 64 publishers, synchronous, a connection each",
}

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

LABELS = {"jetstream": "JetStream", "sluice": "Sluice", "liftbridge": "Liftbridge"}
SHORT = {"jetstream": "JS", "sluice": "Sluice", "liftbridge": "LB"}

def summary(results, rows, systems="jetstream sluice"):
    systems = systems.split()
    others = [s for s in systems if s != "sluice"]  # each gets a Sluice/<system> ratio
    def load(row, system):
        out = []
        for path in sorted(glob.glob(os.path.join(results, f"{row}-{system}-*.json"))):
            d = load_file(path)
            d["_retried"] = os.path.exists(path + ".retried")
            out.append(d)
        return out
    p99 = lambda ds: median([(d["latency_us"] or {}).get("p99") for d in ds])
    cpu = lambda ds: median([d["server"].get("cpu_us_per_msg") for d in ds])
    rss = lambda ds: max(d["server"].get("peak_rss_kb", 0) for d in ds) / 1024
    short = " / ".join(SHORT[s] for s in systems)
    print("| row | messages | " + " | ".join(f"{LABELS[s]} msgs/s" for s in systems) + " | "
          + " | ".join(f"Sluice/{LABELS[s]}" for s in others)
          + f" | p99 ms {short} | server CPU µs/msg {short} | peak RSS MiB {short} | steal % max | runs (msgs/s) "
          + " vs ".join(SHORT[s] for s in systems) + " |")
    print("|---|---:|" + "---:|" * len(systems) + "---:|" * len(others) + "---:|---:|---:|---:|---|")
    for row in rows:
        data = {s: load(row, s) for s in systems}
        if any(not ds for ds in data.values()):
            continue
        rate = {s: median([d["msgs_per_sec"] for d in data[s]]) for s in systems}
        p99s = [p99(data[s]) for s in systems]
        latency = "-" if None in p99s else " / ".join(f"{v / 1000:.2f}" for v in p99s)
        cpus_ = [cpu(data[s]) for s in systems]
        cpus = "-" if None in cpus_ else " / ".join(f"{v:.1f}" for v in cpus_)
        everything = [d for s in systems for d in data[s]]
        steal_max = max(d.get("steal_percent") or 0 for d in everything)
        retried = sum(d["_retried"] for d in everything)
        runs = " vs ".join(" / ".join(f"{d['msgs_per_sec']:,.0f}" for d in data[s]) for s in systems)
        note = f" ({retried} repeated for steal)" if retried else ""
        print(f"| {NAMES[row]} | {data[systems[0]][0]['messages']:,} | "
              + " | ".join(f"{rate[s]:,.0f}" for s in systems) + " | "
              + " | ".join(f"**{rate['sluice'] / rate[s]:.2f}x**" for s in others)
              + f" | {latency} | {cpus} | " + " / ".join(f"{rss(data[s]):.0f}" for s in systems)
              + f" | {steal_max:.1f} | {runs}{note} |")

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"steal": steal, "line": line, "summary": summary}[command](*args)
PY

# measure <row> <run> <system> <args...>: runs until steal stays under MAX_STEAL (3 tries), keeps the last.
measure() {
  local row="$1" run="$2" system="$3"; shift 3
  local file="$work/results/$row-$system-$run.json" try steal
  for try in 1 2 3; do
    if ! bench "$system" "$@" >"$file" 2>"$work/err.txt"; then
      echo "compare.sh: row $row run $run on $system failed:" >&2
      cat "$work/err.txt" "$file" >&2
      exit 1
    fi
    if steal="$(python3 "$work/report.py" steal "$file" "$MAX_STEAL")"; then
      break
    fi
    echo "  row $row run $run $system: steal ${steal}% > ${MAX_STEAL}%, repeating (try $try)" >&2
    echo "$try" >"$file.retried"
  done
  python3 "$work/report.py" line "$file" "$row" "$run" "$system" >&2
}

# order <run>: rotate which system goes first (two systems: alternate).
order() {
  local list=($systems) n i out=()
  n=${#list[@]}
  for i in $(seq 0 $((n - 1))); do out+=("${list[$(( ($1 - 1 + i) % n ))]}"); done
  echo "${out[*]}"
}

# Steady state, not start-up, is what a broker runs in: warm both servers with every row's shape
# first. The .NET JIT needs about 10 s of a workload before tiered compilation settles (server CPU per
# message in row D fell 92 -> 54 -> 32 -> 28 -> 24 us over its first five 60k-message runs); nats-server
# is compiled ahead of time and gains little, but gets the same treatment. WARMUP=0 skips most of it.
echo "warming up the servers ($systems) with every row's shape (not measured)..." >&2
for system in $systems; do
  if [ "${WARMUP:-1}" != 0 ]; then
    bench "$system" producer --stream warmup --subject warmup --create-stream -n 20000 --pb 1 >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n 300000 --pb 100 >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n 300000 -c 4 --pb 100 >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n 150000 -c 64 --pb 1 >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n 150000 -c 64 --connections 64 --pb 1 >/dev/null
    bench "$system" consumer --stream warmup --subject warmup -n 300000 >/dev/null
    bench "$system" consumer --stream warmup --subject warmup -n 300000 >/dev/null
  fi
  bench "$system" producer --stream warmup --subject warmup --create-stream -n 3000 >/dev/null
  bench "$system" consumer --stream warmup --subject warmup -n 3000 --delete-stream >/dev/null
done

producer_row() { # row messages concurrent pub-batch [connections, default 1: shared, as in Liftbridge's tool]
  local row="$1" n="$2" c="$3" pb="$4" conns="${5:-1}" run system
  echo "row $row: $c publisher(s) on $conns connection(s), pub-batch $pb, $n messages of $MESSAGE_SIZE B" >&2
  for run in $(seq 1 "$RUNS"); do
    for system in $(order "$run"); do
      measure "$row" "$run" "$system" producer --stream "bench-$row" --subject "bench-$row" --create-stream --delete-stream \
        -n "$n" -c "$c" --connections "$conns" --pb "$pb" --ack-policy leader
    done
  done
}

for row in $(echo "$rows" | grep -o .); do
  case "$row" in
    A) producer_row A "$ROW_A" 1 1 ;;
    B) producer_row B "$ROW_B" 1 100 ;;
    C) producer_row C "$ROW_C" 4 100 ;;
    D) producer_row D "$ROW_D" 64 1 ;;
    F) producer_row F "$ROW_F" 64 1 64 ;;
    E)
      echo "row E: consume $ROW_E messages from the start (filling each stream first, not measured)" >&2
      for system in $systems; do
        bench "$system" producer --stream bench-E --subject bench-E --create-stream -n "$ROW_E" --pb 100 >/dev/null
      done
      for run in $(seq 1 "$RUNS"); do
        for system in $(order "$run"); do
          measure E "$run" "$system" consumer --stream bench-E --subject bench-E -n "$ROW_E"
        done
      done
      for system in $systems; do
        bench "$system" consumer --stream bench-E --subject bench-E -n 1 --delete-stream >/dev/null
      done
      ;;
    *) echo "compare.sh: unknown row '$row'" >&2; exit 2 ;;
  esac
done

summary="$(python3 "$work/report.py" summary "$work/results" "$rows" "$systems")"
echo
echo "$summary"
echo
lb_note=""
[ -n "$liftbridge" ] && lb_note="; $lb_version (embedded NATS)"
echo "nats-server $nats_version; sluice $sluice_version @ $sluice_commit$lb_note; .NET SDK $dotnet_version; $(nproc) cores; load after: $(uptime | sed 's/.*load average/load average/')"
if [ -n "$out" ]; then
  { echo "$summary"; echo; echo "nats-server $nats_version; sluice @ $sluice_commit$lb_note; $(nproc) cores; $(date -u +%F)"; } >"$out"
fi
