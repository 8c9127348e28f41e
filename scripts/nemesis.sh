#!/usr/bin/env bash
# The long fault-injection run (docs/reliability.md quotes its output): a 3-broker Sluice cluster on a 3-member etcd,
# all on 127.0.0.1, under acks-ALL load, given each fault of the plan in turn, then the checker. The test suite runs
# a short version (NemesisTests); this is the one whose figures the docs publish.
#
# usage: scripts/nemesis.sh [--plan PLAN] [--hold S] [--quiet S] [--seed N] [--no-build] [--out FILE] [--keep]
#   --plan    faults, kind:count,... (default: the issue's figures plus the other kinds)
#             kinds: leader-kill controller-kill pause partition etcd-kill disk-full slow-follower
#   --hold    seconds each fault lasts (default 8: past the 3 s broker lease, so pauses and partitions move leaders)
#   --quiet   seconds of load without faults after each recovery (default 3)
#   --out     append the summary (markdown) to FILE
#   --keep    keep the work directory (broker and etcd logs) and print its path
# Needs: etcd (apt-get install etcd-server), root for the disk-full fault (a tmpfs per broker).
# Exit status: 0 when the checker found nothing, 1 when it found violations.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
plan="leader-kill:20,partition:10,etcd-kill:5,pause:5,controller-kill:5,disk-full:3,slow-follower:3"
hold=8
quiet=3
seed=1
build=1
out=""
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --plan) plan="$2"; shift ;;
    --hold) hold="$2"; shift ;;
    --quiet) quiet="$2"; shift ;;
    --seed) seed="$2"; shift ;;
    --no-build) build=0 ;;
    --out) out="$2"; shift ;;
    --keep) keep=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "nemesis.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

command -v etcd >/dev/null || { echo "nemesis.sh: etcd not found (apt-get install -y etcd-server)" >&2; exit 1; }
if [ "$build" = 1 ]; then
  dotnet build "$repo/tests/Sluice.Nemesis" -c Release -nologo -clp:ErrorsOnly >&2
fi

work="$(mktemp -d -t sluice-nemesis-XXXXXX)"
cleanup() {
  if [ "$keep" = 1 ]; then echo "nemesis.sh: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

args=(--plan "$plan" --hold "$hold" --quiet "$quiet" --seed "$seed" --work "$work/run")
[ -n "$out" ] && args+=(--out "$out")
echo "nemesis.sh: $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
dotnet "$repo/tests/Sluice.Nemesis/bin/Release/net10.0/sluice-nemesis.dll" "${args[@]}"
