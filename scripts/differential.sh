#!/usr/bin/env bash
# Differential check: runs every scenario of tests/differential against a real Liftbridge server and
# against `sluice serve`, and prints SAME / DOCUMENTED / DIFF per scenario with the fields that differ.
# Exits 1 if any difference is not listed in tests/differential/documented.txt (each entry cites the
# docs/compatibility.md text that explains it). Not part of ./test.sh: it needs the Liftbridge binary.
#
# Usage: scripts/differential.sh [--liftbridge BIN] [--only TEXT] [--show] [--keep] [--no-build]
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
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --liftbridge) lb=${2:?--liftbridge needs a path}; shift 2 ;;
    --no-build) build=0; shift ;;
    --only) pass+=(--only "${2:?--only needs a text}"); shift 2 ;;
    --show|--keep) pass+=("$1"); shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$lb" ] || [ ! -x "$lb" ]; then
  echo "the Liftbridge binary is needed: --liftbridge BIN or LIFTBRIDGE_BIN (go install github.com/liftbridge-io/liftbridge@v1.9.0)" >&2
  exit 2
fi
command -v nats-server >/dev/null || { echo "sluice serve --embedded-nats needs nats-server on PATH (apt-get install -y nats-server)" >&2; exit 2; }
# grpcio and grpc_tools from Debian's python3 (as tests/conformance uses them)
py=/usr/bin/python3
"$py" -c 'import grpc, grpc_tools' 2>/dev/null || { echo "needs python3-grpcio and python3-grpc-tools (apt-get install -y python3-grpcio python3-grpc-tools)" >&2; exit 2; }

if [ "$build" = 1 ]; then
  dotnet build src/Sluice.Cli -c Release -nologo -clp:ErrorsOnly
fi
sluice=src/Sluice.Cli/bin/Release/net10.0/sluice
echo "liftbridge: $lb ($("$lb" --version 2>/dev/null | head -1))"
echo "sluice:     $sluice serve ($("$sluice" version 2>/dev/null | head -1))"
exec "$py" tests/differential/differential.py --liftbridge "$lb" "${pass[@]}" --sluice "$sluice" serve
