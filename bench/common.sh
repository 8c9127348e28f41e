# Shared by bench/compare.sh and bench/cluster.sh (sourced, not run): building the two executables, and
# stopping a child by PID. Needs $repo and $build set by the caller; sets $sluice and $bench.

# build_tools NAME: builds sluice and sluice-bench in Release unless --no-build; fails naming NAME when missing.
build_tools() {
  if [ "$build" -eq 1 ]; then
    echo "building Release (sluice, sluice-bench)..." >&2
    dotnet build "$repo/src/Sluice.Cli" -c Release -nologo -clp:ErrorsOnly >&2
    dotnet build "$repo/bench/Sluice.Bench" -c Release -nologo -clp:ErrorsOnly >&2
  fi
  sluice="$repo/src/Sluice.Cli/bin/Release/net10.0/sluice"
  bench="$repo/bench/Sluice.Bench/bin/Release/net10.0/sluice-bench"
  [ -x "$sluice" ] && [ -x "$bench" ] || { echo "$1: build first (missing $sluice or $bench)" >&2; exit 1; }
}

# stop_pid PID: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
stop_pid() {
  local p="$1"
  [ -n "$p" ] || return 0
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
