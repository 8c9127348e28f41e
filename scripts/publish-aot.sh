#!/usr/bin/env bash
# Publishes the Native AOT `sluice` (one self-contained native executable, no .NET runtime needed to run it)
# into artifacts/aot/<rid>/ and prints the binary's path on stdout. Needs clang: `apt-get install clang`
# (Sluice.Cli.csproj falls back to clang-14 when only that is installed). About 3 minutes on 2 cores.
#
# usage: scripts/publish-aot.sh [rid]     (default linux-x64; Native AOT does not cross-compile to another OS)
set -euo pipefail
cd "$(dirname "$0")/.."
rid=${1:-linux-x64}
out=artifacts/aot/$rid
rm -rf "$out"
dotnet publish src/Sluice.Cli -c Release -r "$rid" -o "$out" -nologo -clp:ErrorsOnly -p:TreatWarningsAsErrors=true >&2
# The published directory also gets the referenced projects' .pdb/.xml files, which the native binary does not use.
find "$out" -maxdepth 1 -type f ! -name sluice ! -name sluice.dbg -delete
echo "$(pwd)/$out/sluice"
