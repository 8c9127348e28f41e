#!/usr/bin/env bash
# Runs every Sluice test on a fresh machine: installs what the tests need, checks formatting,
# then runs the whole suite. CI runs exactly this script (.ci/run).
set -euo pipefail
cd "$(dirname "$0")"

# A header before each stage, so a reader of a CI log sees where the time went and what failed.
stage() { printf '\n==== %s (%s) ====\n' "$1" "$(date -u +%H:%M:%S)"; }

stage "install: what the tests need"
# --- external servers the integration tests start on loopback, and gRPC clients -----------
need_apt=()
command -v nats-server >/dev/null 2>&1 || need_apt+=(nats-server)
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
# Debian's chromium for the web console's browser tests (Playwright drives it; no `playwright install`)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# grpcio (gRPC's C core) for the Python conformance suite, in Debian's python3
/usr/bin/python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1 || need_apt+=(python3 python3-grpcio python3-grpc-tools python3-protobuf)
# node and npm for the grpc-js conformance suite (a machine with only the .NET SDK has neither)
if [ -f tests/conformance/package.json ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "installing: ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "missing: ${need_apt[*]} (run as root or install them: apt-get install -y ${need_apt[*]})" >&2
    exit 1
  fi
else
  echo "Debian packages: all present"
fi

# --- an independent gRPC implementation for the conformance suite --------------------------
if [ -f tests/conformance/package.json ] && [ ! -d tests/conformance/node_modules ]; then
  (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- build, format, test -------------------------------------------------------------------
stage "build"
dotnet build Sluice.slnx -c Release -nologo -clp:ErrorsOnly
stage "format"
dotnet format Sluice.slnx --verify-no-changes --no-restore

stage "test"
results=$(mktemp -d)
set +e
# A test that hangs is killed after 5 minutes of silence and named in the output (instead of CI waiting forever).
dotnet test Sluice.slnx -c Release --no-build -nologo --logger "trx" --results-directory "$results" --blame-hang-timeout 5m --blame-hang-dump-type none 2>&1 | tee "$results/console.log"
status=${PIPESTATUS[0]}
set -e

# One plain closing line that any reader understands: "N passed, N failed".
passed=0; failed=0; skipped=0
for f in "$results"/*.trx; do
  [ -f "$f" ] || continue
  line=$(grep -o '<Counters [^>]*>' "$f" | head -1)
  p=$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$line"); passed=$((passed + ${p:-0}))
  x=$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$line"); failed=$((failed + ${x:-0}))
  n=$(sed -n 's/.* notExecuted="\([0-9]*\)".*/\1/p' <<<"$line"); skipped=$((skipped + ${n:-0}))
done
rm -rf "$results"
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$skipped" -ne 0 ]; then echo "tests were skipped; nothing may be skipped" >&2; status=1; fi
if [ "$passed" -eq 0 ]; then echo "no test ran" >&2; status=1; fi
exit "$status"
