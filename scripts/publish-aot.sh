#!/usr/bin/env bash
# Publishes the Native AOT `sluice` (one self-contained native executable, no .NET runtime needed to run it)
# into artifacts/aot/<rid>/ and prints the binary's absolute path on stdout. Needs clang: `apt-get install clang`
# (Sluice.Cli.csproj falls back to clang-14 when only that is installed). A few minutes on 2 cores.
#
# usage: scripts/publish-aot.sh [--rid RID] [--bin PATH]
#   --rid RID    default linux-x64 (linux-arm64 on arm64); Native AOT does not cross-compile to another OS
#   --bin PATH   publish nothing: check that PATH is a Native AOT sluice and print its absolute path
#                (scripts/aot-smoke.sh and scripts/release.sh pass their arguments here)
set -euo pipefail
cd "$(dirname "$0")/.."
rid=linux-x64
case "$(uname -m)" in aarch64) rid=linux-arm64 ;; esac
bin=
while [ $# -gt 0 ]; do
  case "$1" in
    --rid) rid=${2:?--rid needs a runtime identifier}; shift 2 ;;
    --bin) bin=${2:?--bin needs a path}; shift 2 ;;
    *) echo "usage: $(basename "$0") [--rid RID] [--bin PATH]" >&2; exit 2 ;;
  esac
done
if [ -z "$bin" ]; then
  out=artifacts/aot/$rid
  rm -rf "$out"
  dotnet publish src/Sluice.Cli -c Release -r "$rid" -o "$out" -nologo -clp:ErrorsOnly -p:TreatWarningsAsErrors=true >&2
  bin=$out/sluice
fi
[ -f "$bin" ] && [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
# A Native AOT build has no managed entry assembly or runtimeconfig beside it.
if [ -e "$(dirname "$bin")/sluice.dll" ] || [ -e "$(dirname "$bin")/sluice.runtimeconfig.json" ]; then
  echo "$bin is not a Native AOT build (sluice.dll or sluice.runtimeconfig.json beside it)" >&2; exit 1
fi
echo "$bin"
