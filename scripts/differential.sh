#!/usr/bin/env bash
# Differential check: runs every scenario of tests/differential against a real Liftbridge server and
# against `sluice serve`, and prints SAME / DOCUMENTED / DIFF per scenario with the fields that differ.
# Exits 1 if any difference is not listed in tests/differential/documented.txt (each entry cites the
# docs/compatibility.md text that explains it). Not part of ./test.sh: it needs the Liftbridge binary.
#
# Usage: scripts/differential.sh [--cluster | --failover N] [--liftbridge BIN] [--only TEXT] [--show] [--keep] [--no-build]
#   --cluster         the cluster scenarios (tests/differential/cluster_scenarios.py): 3 Liftbridge nodes
#                     (run-cluster.sh beside the binary, or $LIFTBRIDGE_RUN_CLUSTER) against 3 Sluice brokers on etcd
#   --failover N      time N leader kills (SIGKILL) on each system, alternating; prints medians and the load average
#   --failover-signal term   with --failover: stop the leaders with SIGTERM (a graceful stop) instead
#   --liftbridge BIN  the Liftbridge v1.9.0 binary (default: $LIFTBRIDGE_BIN)
#   --only TEXT       run only scenarios whose name contains TEXT (e.g. --only B21)
#   --show            print every observation of both servers, not only the differences
#   --keep            keep the server directories (logs) of scenarios that differ
#   --no-build        use the existing Release build of src/Sluice.Cli
# Get the binary elsewhere with: go install github.com/liftbridge-io/liftbridge@v1.9.0 (then $(go env GOPATH)/bin/liftbridge)
set -euo pipefail
cd "$(dirname "$0")/.."

lb=${LIFTBRIDGE_BIN:-}
build=1
cluster=0
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --liftbridge) lb=${2:?--liftbridge needs a path}; shift 2 ;;
    --no-build) build=0; shift ;;
    --cluster) cluster=1; pass+=(--cluster); shift ;;
    --failover) cluster=1; pass+=(--failover "${2:?--failover needs a count}"); shift 2 ;;
    --failover-signal) pass+=(--failover-signal "${2:?--failover-signal needs kill or term}"); shift 2 ;;
    --only) pass+=(--only "${2:?--only needs a text}"); shift 2 ;;
    --show|--keep) pass+=("$1"); shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$lb" ] || [ ! -x "$lb" ]; then
  echo "the Liftbridge binary is needed: --liftbridge BIN or LIFTBRIDGE_BIN (go install github.com/liftbridge-io/liftbridge@v1.9.0)" >&2
  exit 2
fi
if [ "$cluster" = 1 ]; then
  run_cluster=${LIFTBRIDGE_RUN_CLUSTER:-$(dirname "$lb")/run-cluster.sh}
  [ -x "$run_cluster" ] || { echo "--cluster needs Liftbridge's run-cluster.sh beside the binary or in LIFTBRIDGE_RUN_CLUSTER" >&2; exit 2; }
  command -v etcd >/dev/null || { echo "the Sluice cluster needs etcd on PATH (apt-get install -y etcd-server)" >&2; exit 2; }
  pass+=(--run-cluster "$run_cluster")
fi
[ "$cluster" = 1 ] || command -v nats-server >/dev/null || { echo "sluice serve --embedded-nats needs nats-server on PATH (apt-get install -y nats-server)" >&2; exit 2; }
# grpcio and grpc_tools from Debian's python3 (as tests/conformance uses them)
py=/usr/bin/python3
"$py" -c 'import grpc, grpc_tools' 2>/dev/null || { echo "needs python3-grpcio and python3-grpc-tools (apt-get install -y python3-grpcio python3-grpc-tools)" >&2; exit 2; }

if [ "$build" = 1 ]; then
  dotnet build src/Sluice.Cli -c Release -nologo -clp:ErrorsOnly
fi
sluice=src/Sluice.Cli/bin/Release/net10.0/sluice
echo "liftbridge: $lb ($("$lb" --version 2>/dev/null | head -1))"
[ "$cluster" = 1 ] && echo "cluster:    $run_cluster (Liftbridge), etcd + 3 x $sluice serve --etcd-endpoints (Sluice)"
echo "sluice:     $sluice serve ($("$sluice" version 2>/dev/null | head -1))"
exec "$py" tests/differential/differential.py --liftbridge "$lb" "${pass[@]}" --sluice "$sluice" serve
