#!/usr/bin/env bash
# Runs Sluice.Client's real-server scenarios (tests/Sluice.Client.Tests, classes RealServer*,
# ConsumerGroupTests and DuplexWriterFailureTests) against a real Liftbridge node instead of the in-process Sluice server:
# admin calls, every ack policy, both publish forms, every subscribe start and stop position,
# metadata, cursors, failures. Scenarios that only make sense for Sluice carry [SluiceOnly(reason)]
# (the trait Server=SluiceOnly) and are left out. Not part of ./test.sh: it needs the Liftbridge binary.
#
# Usage: scripts/client-vs-liftbridge.sh [--liftbridge BIN] [--no-build] [extra dotnet test arguments]
#   --liftbridge BIN  the Liftbridge v1.9.0 binary (default: $LIFTBRIDGE_BIN)
# Get the binary elsewhere with: go install github.com/liftbridge-io/liftbridge@v1.9.0
set -euo pipefail
cd "$(dirname "$0")/.."

lb=${LIFTBRIDGE_BIN:-}
build=1
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --liftbridge) lb=${2:?--liftbridge needs a path}; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [ -z "$lb" ] || [ ! -x "$lb" ]; then
  echo "the Liftbridge binary is needed: --liftbridge BIN or LIFTBRIDGE_BIN (go install github.com/liftbridge-io/liftbridge@v1.9.0)" >&2
  exit 2
fi
lb=$(cd "$(dirname "$lb")" && pwd)/$(basename "$lb")

if [ "$build" = 1 ]; then
  dotnet build tests/Sluice.Client.Tests -c Release -nologo -clp:ErrorsOnly
fi
echo "Sluice-only scenarios left out:"
grep -rh -A1 '^ *\[SluiceOnly(' tests/Sluice.Client.Tests --include='*.cs' \
  | awk 'match($0, /SluiceOnly\("[^"]*"/) { reason = substr($0, RSTART + 12, RLENGTH - 13) }
         match($0, /Task [A-Za-z0-9_]+/) { print "  " substr($0, RSTART + 5, RLENGTH - 5) ": " reason }'
SLUICE_TEST_LIFTBRIDGE_BIN=$lb exec dotnet test tests/Sluice.Client.Tests -c Release --no-build -nologo \
  --filter '(FullyQualifiedName~Sluice.Client.Tests.RealServer|FullyQualifiedName~ConsumerGroupTests|FullyQualifiedName~DuplexWriterFailureTests)&Server!=SluiceOnly' \
  --logger 'console;verbosity=normal' "${extra[@]}"
