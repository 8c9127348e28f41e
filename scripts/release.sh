#!/usr/bin/env bash
# Builds the release archive of `sluice` for this machine's platform: the Native AOT binary (no .NET needed to run
# it), README.md, LICENSE when the repository has one, and docs/configuration.md and docs/cli.md, as
#   artifacts/release/sluice-<version>-<rid>.tar.gz
#   artifacts/release/sluice-<version>-<rid>.tar.gz.sha256     (check with: sha256sum -c <file>.sha256)
# The version is the one of Directory.Build.props (the tool's and the packages'). Needs clang (see scripts/publish-aot.sh).
#
# usage: scripts/release.sh [--bin PATH | --rid RID]   (--bin: archive an already published AOT binary; see scripts/publish-aot.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

version=$(dotnet msbuild src/Sluice.Cli -getProperty:Version -nologo)
[ -n "$version" ] || { echo "could not read the version from Directory.Build.props" >&2; exit 1; }
bin=$(scripts/publish-aot.sh "$@")
# the RID: the directory publish-aot.sh publishes into (artifacts/aot/<rid>/), else this machine's
rid=$(basename "$(dirname "$bin")")
case "$rid" in linux-*) ;; *) rid=linux-x64; [ "$(uname -m)" = aarch64 ] && rid=linux-arm64 ;; esac
# The binary must run and report this version before it is shipped.
reported=$("$bin" version)
case "$reported" in "$version"*) ;; *) echo "$bin reports version $reported, expected $version" >&2; exit 1 ;; esac

name=sluice-$version-$rid
out=$repo/artifacts/release
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/docs" "$out"
install -m 0755 "$bin" "$stage/$name/sluice"
cp README.md "$stage/$name/"
for f in LICENSE LICENSE.md LICENSE.txt; do [ -f "$f" ] && cp "$f" "$stage/$name/"; done
cp docs/configuration.md docs/cli.md "$stage/$name/docs/"
# Reproducible ordering, owner and times: the same inputs give the same archive.
mtime=$(git log -1 --format=%cI 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$mtime" -C "$stage" -cf - "$name" | gzip -n -9 >"$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
echo "$out/$name.tar.gz.sha256"
