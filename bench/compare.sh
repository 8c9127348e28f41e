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
# Cluster mode (--cluster): every system runs as a 3-node cluster on 127.0.0.1 and every stream has 3 replicas,
# publishes waiting for the replicated ack:
#   Sluice      etcd + 3 `sluice serve --etcd-endpoints` brokers (bench/common.sh, as bench/cluster.sh), streams
#               with replication factor 3, ack policy ALL, min ISR the default (1, Liftbridge's default too);
#   JetStream   3 nats-servers clustered over routes, each with its own JetStream store dir; R3 file streams, the
#               default PubAck (sent once a quorum, 2 of 3, stored the message);
#   Liftbridge  3 nodes from run-cluster.sh beside the binary (or LIFTBRIDGE_RUN_CLUSTER; NATS embedded in n1),
#               replication factor 3, AckPolicy ALL.
# Server CPU and peak RSS are summed over every process a system needs (Sluice: 3 brokers + etcd; JetStream: 3
# nats-servers; Liftbridge: 3 nodes, one with the NATS server), and a second table splits the CPU per process.
# Rows A-E by default, at smaller sizes (CLUSTER_ROW_A.. below) and a shorter warm-up. With --failover N it then
# stops its clusters and runs scripts/differential.sh --failover N: N leader SIGKILLs on Sluice and on Liftbridge,
# alternating, timed to the first ALL ack on the new leader (needs python3-grpcio, python3-grpc-tools).
#
# usage: bench/compare.sh [--quick] [--cluster] [--rows ABCDEF] [--runs N] [--no-build] [--out FILE]
#                         [--liftbridge PATH] [--failover N]
#   --quick      small rows (A 20k, B/C 100k, D/F 50k, E 100k messages; cluster: A 1k, B/C 20k, D 10k, E 50k)
#   --cluster    3-node clusters and replicated streams (above); needs etcd
#   --rows       which rows to run (default ABCDEF; cluster: ABCDE)
#   --out FILE   also write the summary (markdown) to FILE
#   --liftbridge PATH  also run the Liftbridge server at PATH (default: $LIFTBRIDGE_BIN, if set)
#   --failover N with --cluster and --liftbridge: also time N leader kills on each (scripts/differential.sh)
# Row sizes (messages) and knobs can be set in the environment:
#   ROW_A=200000 ROW_B=1000000 ROW_C=1000000 ROW_D=500000 ROW_E=1000000 ROW_F=300000
#   CLUSTER_ROW_A=3000 CLUSTER_ROW_B=100000 CLUSTER_ROW_C=100000 CLUSTER_ROW_D=50000 CLUSTER_ROW_E=200000
#   RUNS=3 MESSAGE_SIZE=256 MAX_STEAL=3 NATS_SERVER=/usr/sbin/nats-server WARMUP=1 LIFTBRIDGE_BIN= ETCD=
#   LIFTBRIDGE_RUN_CLUSTER= RUN_TIMEOUT=1800 CLUSTER_RUN_TIMEOUT=300 (seconds; a run that fails is tried again, 3 tries)
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
rows=""
build=1
cluster=0
failover=0
out=""
quick=0
liftbridge="${LIFTBRIDGE_BIN:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --cluster) cluster=1 ;;
    --failover) failover="$2"; shift ;;
    --rows) rows="$2"; shift ;;
    --runs) RUNS="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --liftbridge) liftbridge="$2"; shift ;;
    -h|--help) sed -n '2,52p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

if [ "$cluster" -eq 1 ]; then
  # A replicated ALL publish costs several times a single server's (docs/benchmarks.md): smaller rows, same shapes.
  if [ "$quick" -eq 1 ]; then
    : "${CLUSTER_ROW_A:=1000}" "${CLUSTER_ROW_B:=20000}" "${CLUSTER_ROW_C:=20000}" "${CLUSTER_ROW_D:=10000}" "${CLUSTER_ROW_E:=50000}"
  fi
  ROW_A="${CLUSTER_ROW_A:-3000}"
  ROW_B="${CLUSTER_ROW_B:-100000}"
  ROW_C="${CLUSTER_ROW_C:-100000}"
  ROW_D="${CLUSTER_ROW_D:-50000}"
  ROW_E="${CLUSTER_ROW_E:-200000}"
  ROW_F="${CLUSTER_ROW_F:-30000}"
  rows="${rows:-ABCDE}"
else
  if [ "$quick" -eq 1 ]; then
    : "${ROW_A:=20000}" "${ROW_B:=100000}" "${ROW_C:=100000}" "${ROW_D:=50000}" "${ROW_E:=100000}" "${ROW_F:=50000}"
  fi
  ROW_A="${ROW_A:-200000}"
  ROW_B="${ROW_B:-1000000}"
  ROW_C="${ROW_C:-1000000}"
  ROW_D="${ROW_D:-500000}"
  ROW_E="${ROW_E:-1000000}"
  ROW_F="${ROW_F:-300000}"
  rows="${rows:-ABCDEF}"
fi
RUNS="${RUNS:-3}"
MESSAGE_SIZE="${MESSAGE_SIZE:-256}"
MAX_STEAL="${MAX_STEAL:-3}"
NATS_SERVER="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
# A run that takes longer has hung (a cluster's run lasts minutes at most): it fails and is tried again.
RUN_TIMEOUT="${RUN_TIMEOUT:-1800}"
[ "$cluster" -eq 1 ] && RUN_TIMEOUT="${CLUSTER_RUN_TIMEOUT:-300}"

[ -x "$NATS_SERVER" ] || { echo "compare.sh: nats-server not found (apt-get install -y nats-server, or set NATS_SERVER)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "compare.sh: python3 is needed for the summary" >&2; exit 1; }
if [ -n "$liftbridge" ] && [ ! -x "$liftbridge" ]; then
  echo "compare.sh: Liftbridge binary '$liftbridge' is not executable (go install github.com/liftbridge-io/liftbridge@v1.9.0)" >&2; exit 1
fi
if [ "$failover" -gt 0 ] && { [ "$cluster" -eq 0 ] || [ -z "$liftbridge" ]; }; then
  echo "compare.sh: --failover needs --cluster and a Liftbridge binary" >&2; exit 2
fi
lb_run_cluster=""
if [ "$cluster" -eq 1 ] && [ -n "$liftbridge" ]; then
  lb_run_cluster="${LIFTBRIDGE_RUN_CLUSTER:-$(dirname "$liftbridge")/run-cluster.sh}"
  [ -x "$lb_run_cluster" ] || { echo "compare.sh: --cluster needs Liftbridge's run-cluster.sh beside the binary or in LIFTBRIDGE_RUN_CLUSTER" >&2; exit 1; }
fi
systems="jetstream sluice"
[ -n "$liftbridge" ] && systems="jetstream sluice liftbridge"

# shellcheck source=bench/common.sh
. "$repo/bench/common.sh"
build_tools compare.sh

work="$(mktemp -d -t sluice-compare-XXXXXX)"
started=()          # every server process, in start order; stopped in reverse (Liftbridge n3, n2 before n1)
declare -A servers_of pids_of target_of

cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[$i]}"; done
  stop_pid "${etcd_pid:-}"   # set by start_etcd before it is known to be healthy
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM

wait_port() { wait_listening "$1" "$2" "$3" "$work/$3.log" 30; } # pid port name
mkdir -p "$work/run" "$work/results"
printf 'storage:\n  durability: never\n' >"$work/sluice.yaml"
target_of[jetstream]=jetstream
target_of[sluice]=sluice
target_of[liftbridge]=sluice   # the same client and code path as Sluice: Liftbridge's gRPC API

if [ "$cluster" -eq 0 ]; then
  nats_port="$(free_port)"
  sluice_port="$(free_port)"
  mkdir -p "$work/js" "$work/sluice"
  "$NATS_SERVER" -js -sd "$work/js" -p "$nats_port" -a 127.0.0.1 >"$work/nats.log" 2>&1 &
  nats_pid=$!; started+=("$nats_pid")
  # The server runs from an empty directory beside (not above) its data dir: ASP.NET Core's config file watcher
  # covers the working directory recursively, and would otherwise see every log write.
  (cd "$work/run" && exec "$sluice" serve --port "$sluice_port" --host 127.0.0.1 --data-dir "$work/sluice" -c "$work/sluice.yaml" --level warn) >"$work/sluice.log" 2>&1 &
  sluice_pid=$!; started+=("$sluice_pid")
  wait_port "$nats_pid" "$nats_port" nats
  wait_port "$sluice_pid" "$sluice_port" sluice
  servers_of[jetstream]="nats://127.0.0.1:$nats_port"; pids_of[jetstream]="$nats_pid"
  servers_of[sluice]="127.0.0.1:$sluice_port"; pids_of[sluice]="$sluice_pid"
  where="nats-server pid $nats_pid port $nats_port; sluice pid $sluice_pid port $sluice_port"

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
    lb_pid=$!; started+=("$lb_pid")
    wait_port "$lb_pid" "$lb_port" liftbridge
    servers_of[liftbridge]="127.0.0.1:$lb_port"; pids_of[liftbridge]="$lb_pid"
    where="$where; liftbridge pid $lb_pid port $lb_port (embedded NATS on $lb_nats_port)"
  fi
else
  # JetStream: three nats-servers in one NATS cluster (routes on loopback), each with its own store dir.
  declare -A js_port js_route
  for n in 1 2 3; do js_port[$n]="$(free_port)"; js_route[$n]="$(free_port)"; done
  js_pids=()
  for n in 1 2 3; do
    mkdir -p "$work/js$n"
    cat >"$work/js$n.conf" <<NATSCONF
server_name: js$n
listen: 127.0.0.1:${js_port[$n]}
jetstream { store_dir: "$work/js$n" }
cluster {
  name: bench
  listen: 127.0.0.1:${js_route[$n]}
  routes: [ nats-route://127.0.0.1:${js_route[1]}, nats-route://127.0.0.1:${js_route[2]}, nats-route://127.0.0.1:${js_route[3]} ]
}
NATSCONF
    "$NATS_SERVER" -c "$work/js$n.conf" >"$work/js$n.log" 2>&1 &
    js_pids+=("$!"); started+=("$!")
  done
  for n in 1 2 3; do wait_port "${js_pids[$((n - 1))]}" "${js_port[$n]}" "js$n"; done
  servers_of[jetstream]="nats://127.0.0.1:${js_port[1]},nats://127.0.0.1:${js_port[2]},nats://127.0.0.1:${js_port[3]}"
  pids_of[jetstream]="$(IFS=,; echo "${js_pids[*]}")"

  # Sluice: one etcd and three brokers on it, as bench/cluster.sh starts them.
  start_etcd "$work"; started+=("$etcd_pid")
  start_sluice_brokers "$work" "$work/sluice.yaml" warn
  sl_pids=("${broker_pids[@]}")
  servers_of[sluice]="$brokers"
  pids_of[sluice]="$(IFS=,; echo "${sl_pids[*]}"),$etcd_pid"   # etcd last: the per-process table names it
  where="JetStream pids ${pids_of[jetstream]} ports ${js_port[1]},${js_port[2]},${js_port[3]}; Sluice brokers pids ${sl_pids[*]} at $brokers, etcd pid $etcd_pid $etcd_url"

  if [ -n "$liftbridge" ]; then
    # Liftbridge: its own script, three nodes on consecutive ports, NATS embedded in n1; it prints "PID n<i> <pid>".
    lb_base="$(free_port 3)"
    lb_nats_port="$(free_port)"
    lb_status=0
    LB_LOG_LEVEL=warn "$lb_run_cluster" "$lb_base" "$lb_nats_port" "$work/lb" "$liftbridge" >"$work/lb-start.log" 2>&1 || lb_status=$?
    lb_pids=()
    while read -r _ _ p; do lb_pids+=("$p"); started+=("$p"); done < <(grep '^PID n' "$work/lb-start.log")
    if [ "$lb_status" -ne 0 ] || [ "${#lb_pids[@]}" -ne 3 ]; then
      echo "compare.sh: $lb_run_cluster failed:" >&2; cat "$work/lb-start.log" >&2; exit 1
    fi
    servers_of[liftbridge]="127.0.0.1:$lb_base,127.0.0.1:$((lb_base + 1)),127.0.0.1:$((lb_base + 2))"
    pids_of[liftbridge]="$(IFS=,; echo "${lb_pids[*]}")"   # n1 first: it also runs the NATS server
    where="$where; Liftbridge pids ${lb_pids[*]} ports $lb_base..$((lb_base + 2)), NATS in n1 on $lb_nats_port"
  fi
fi

nats_version="$("$NATS_SERVER" --version 2>&1 | head -1 | sed "s/^nats-server: //")"
sluice_version="$("$sluice" --version 2>&1 | head -1 || true)"
sluice_commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dotnet_version="$(dotnet --version)"
lb_version=""
[ -n "$liftbridge" ] && lb_version="$("$liftbridge" --version 2>&1 | head -1)"
echo "nats-server: $nats_version; sluice: $sluice_version @ $sluice_commit; .NET SDK $dotnet_version${lb_version:+; liftbridge: $lb_version}" >&2
echo "$where" >&2
echo "load: $(uptime)" >&2

# Cluster mode: every stream has 3 replicas and every publish waits for the replicated ack (JetStream: the PubAck).
replication=()
ack=leader
if [ "$cluster" -eq 1 ]; then replication=(--replication-factor 3); ack=all; fi

# bench <system> <args...>: one run of the tool against a system, JSON on stdout.
bench() {
  local system="$1"; shift
  "$bench" "$@" --target "${target_of[$system]}" --servers "${servers_of[$system]}" --server-pid "${pids_of[$system]}" \
    "${replication[@]}" --ms "$MESSAGE_SIZE" --timeout "$RUN_TIMEOUT" --output json
}

# A fresh Liftbridge listens before its Raft has elected itself metadata leader ("no known metadata leader"), a
# fresh cluster before its members have met (JetStream's meta leader, Sluice's brokers registering): wait until a
# stream can be created, for at most 60 s.
for system in $systems; do
  [ "$cluster" -eq 1 ] || [ "$system" = liftbridge ] || continue
  for try in $(seq 1 60); do
    if bench "$system" producer --stream ready --subject ready --create-stream --delete-stream --ack-policy "$ack" -n 1 >/dev/null 2>"$work/err.txt"; then
      break
    fi
    [ "$try" -eq 60 ] && { echo "compare.sh: $system did not accept a stream within 60 s:" >&2; cat "$work/err.txt" >&2; exit 1; }
    sleep 1
  done
done

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
    print(f"  row {row} run {run} {system:10} {d['msgs_per_sec']:>11,.0f} msgs/s  p99 {lat.get('p99', '-')} us  max {lat.get('max', '-')} us  "
          f"server cpu {d['server']['cpu_us_per_msg']:.2f} us/msg  rss {d['server']['peak_rss_kb'] / 1024:.0f} MiB  "
          f"client cpu {d['client']['cpu_us_per_msg']:.2f} us/msg  steal {d['steal_percent'] or 0:.2f}%"
          + per_process(d))

def per_process(d):
    procs = d["server"].get("processes", [])
    if len(procs) < 2:
        return ""
    return "  per process " + " / ".join("%.1f" % p["cpu_us_per_msg"] for p in procs) + " us/msg"

def processes(results, rows, systems, labels):
    """Server CPU per message of each process, medians over the runs: brokers largest first (the leader of the
    row's stream does most), the processes named in labels ("system:position=name,...") on their own."""
    named = {}
    for item in labels.split(","):
        if item:
            system_position, name = item.split("=")
            system, position = system_position.split(":")
            named.setdefault(system, {})[int(position)] = name
    systems = systems.split()
    print("| row | " + " | ".join(f"{LABELS[s]}: {PROCESSES[s]}" for s in systems) + " |")
    print("|---|" + "---|" * len(systems))
    for row in rows:
        cells = []
        for s in systems:
            runs = [load_file(p) for p in sorted(glob.glob(os.path.join(results, f"{row}-{s}-*.json")))]
            if not runs:
                break
            ranked, fixed = [], {}
            for d in runs:
                procs = d["server"].get("processes", [])
                names = named.get(s, {})
                ranked.append(sorted((p["cpu_us_per_msg"] for i, p in enumerate(procs) if i not in names), reverse=True))
                for i, name in names.items():
                    if i < len(procs):
                        fixed.setdefault(name, []).append(procs[i]["cpu_us_per_msg"])
            width = min(len(r) for r in ranked)
            cell = " / ".join(f"{median([r[k] for r in ranked]):.1f}" for k in range(width))
            cell += "".join(f", {name} {median(v):.1f}" for name, v in fixed.items())
            cells.append(cell)
        else:
            print(f"| {row} | " + " | ".join(cells) + " |")

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
PROCESSES = {"jetstream": "nats-servers", "sluice": "brokers, etcd", "liftbridge": "nodes (n1 runs NATS)"}

def summary(results, rows, systems="jetstream sluice"):
    systems = systems.split()
    others = [s for s in systems if s != "sluice"]  # each gets a Sluice/<system> ratio
    def load(row, system):
        out = []
        for path in sorted(glob.glob(os.path.join(results, f"{row}-{system}-*.json"))):
            d = load_file(path)
            d["_retried"] = os.path.exists(path + ".retried")
            d["_failed"] = open(path + ".failed").read().splitlines() if os.path.exists(path + ".failed") else []
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
        failed = [(s, e) for s in systems for d in data[s] for e in d["_failed"]]
        if failed:
            note += " (repeated after a failed try: " + "; ".join(f"{LABELS[s]}: {e.strip()}" for s, e in failed) + ")"
        print(f"| {NAMES[row]} | {data[systems[0]][0]['messages']:,} | "
              + " | ".join(f"{rate[s]:,.0f}" for s in systems) + " | "
              + " | ".join(f"**{rate['sluice'] / rate[s]:.2f}x**" for s in others)
              + f" | {latency} | {cpus} | " + " / ".join(f"{rss(data[s]):.0f}" for s in systems)
              + f" | {steal_max:.1f} | {runs}{note} |")

if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"steal": steal, "line": line, "summary": summary, "processes": processes}[command](*args)
PY

# measure <row> <run> <system> <args...>: runs until steal stays under MAX_STEAL (3 tries), keeps the last.
# A run that fails is repeated too (3 tries in all), and the summary says so with the error: under load,
# Liftbridge's Raft can lose its metadata leader for a moment ("no known metadata leader" on CreateStream).
measure() {
  local row="$1" run="$2" system="$3"; shift 3
  local file="$work/results/$row-$system-$run.json" try steal
  local retry=()
  for try in 1 2 3; do
    if ! bench "$system" "$@" "${retry[@]}" >"$file" 2>"$work/err.txt"; then
      echo "compare.sh: row $row run $run on $system failed (try $try):" >&2
      cat "$work/err.txt" "$file" >&2
      [ "$try" -lt 3 ] || exit 1
      { head -c 300 "$work/err.txt" | tr '\n' ' '; echo; } >>"$file.failed"
      # A stream that a failed try left half-made (Liftbridge under load) is not used again: the next try makes its own.
      case " $* " in *" --create-stream "*) retry=(--stream "bench-$row-$run-$try" --subject "bench-$row-$run-$try") ;; esac
      continue
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
# Cluster mode: fewer messages (a replicated ALL publish costs several times more; Liftbridge's synchronous ones
# run at about 100 msgs/s), but enough for the brokers' JIT to settle: after 10,000 synchronous ALL publishes the
# three Sluice brokers still spent 877 µs per message, a third of it compiling; after 30,000, 531 µs.
w() { if [ "$cluster" -eq 1 ]; then echo "$2"; else echo "$1"; fi; } # single cluster
for system in $systems; do
  if [ "${WARMUP:-1}" != 0 ]; then
    bench "$system" producer --stream warmup --subject warmup --create-stream -n "$(w 20000 6000)" --pb 1 --ack-policy "$ack" >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n "$(w 300000 75000)" --pb 100 --ack-policy "$ack" >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n "$(w 300000 75000)" -c 4 --pb 100 --ack-policy "$ack" >/dev/null
    bench "$system" producer --stream warmup --subject warmup -n "$(w 150000 40000)" -c 64 --pb 1 --ack-policy "$ack" >/dev/null
    if [ "$cluster" -eq 0 ]; then
      bench "$system" producer --stream warmup --subject warmup -n 150000 -c 64 --connections 64 --pb 1 >/dev/null
    fi
    bench "$system" consumer --stream warmup --subject warmup -n "$(w 300000 100000)" >/dev/null
    bench "$system" consumer --stream warmup --subject warmup -n "$(w 300000 100000)" >/dev/null
  fi
  bench "$system" producer --stream warmup --subject warmup --create-stream -n 3000 --ack-policy "$ack" >/dev/null
  bench "$system" consumer --stream warmup --subject warmup -n 3000 --delete-stream >/dev/null
done

producer_row() { # row messages concurrent pub-batch [connections, default 1: shared, as in Liftbridge's tool]
  local row="$1" n="$2" c="$3" pb="$4" conns="${5:-1}" run system
  echo "row $row: $c publisher(s) on $conns connection(s), pub-batch $pb, ack $ack, $n messages of $MESSAGE_SIZE B" >&2
  for run in $(seq 1 "$RUNS"); do
    for system in $(order "$run"); do
      measure "$row" "$run" "$system" producer --stream "bench-$row" --subject "bench-$row" --create-stream --delete-stream \
        -n "$n" -c "$c" --connections "$conns" --pb "$pb" --ack-policy "$ack"
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
        bench "$system" producer --stream bench-E --subject bench-E --create-stream -n "$ROW_E" --pb 100 --ack-policy "$ack" >/dev/null
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
if [ "$cluster" -eq 1 ]; then
  labels="sluice:3=etcd"
  [ -n "$liftbridge" ] && labels="$labels,liftbridge:0=n1+NATS"
  summary="$summary

Server CPU µs per message of each process (medians; brokers, nats-servers and Liftbridge nodes largest first):

$(python3 "$work/report.py" processes "$work/results" "$rows" "$systems" "$labels")"
fi
echo
echo "$summary"
echo
lb_note=""
[ -n "$liftbridge" ] && lb_note="; $lb_version"
[ -n "$liftbridge" ] && [ "$cluster" -eq 0 ] && lb_note="$lb_note (embedded NATS)"
mode="single servers"
[ "$cluster" -eq 1 ] && mode="3-node clusters, 3 replicas, ack $ack"
footer="$mode; nats-server $nats_version; sluice $sluice_version @ $sluice_commit$lb_note; .NET SDK $dotnet_version; $(nproc) cores; $(date -u +%F); load after: $(uptime | sed 's/.*load average/load average/')"
echo "$footer"

if [ "$failover" -gt 0 ]; then
  # The failover harness starts its own clusters (Sluice with a lease TTL of 3 s, Liftbridge with its defaults):
  # stop these first so the two do not share the cores.
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do stop_pid "${started[$i]}"; done
  started=()
  echo "leader failover: scripts/differential.sh --failover $failover (Liftbridge and Sluice alternating)..." >&2
  LIFTBRIDGE_RUN_CLUSTER="$lb_run_cluster" "$repo/scripts/differential.sh" --failover "$failover" --liftbridge "$liftbridge" --no-build \
    | tee "$work/failover.txt" >&2
  summary="$summary

Leader failover, $failover SIGKILLs each (scripts/differential.sh --failover $failover):

\`\`\`
$(sed -n '/^leaders stopped/,$p' "$work/failover.txt")
\`\`\`"
fi

if [ -n "$out" ]; then
  { echo "$summary"; echo; echo "$footer"; } >"$out"
fi
