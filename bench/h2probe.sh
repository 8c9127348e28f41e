#!/usr/bin/env bash
# Research probe for issue #7: how fast rows A and D go against an unchanged `sluice serve` when the
# client adds no thread hops. Starts `sluice serve` (Release, storage.durability: never) and
# `nats-server -js` on free 127.0.0.1 ports with temp dirs, warms both, then runs RUNS rounds of:
# sluice-h2probe (hand-written h2c, blocking sockets, one thread per connection), sluice-bench with
# Sluice.Client, and sluice-bench against JetStream, all with the same synchronous shape. Prints each
# run's msgs/s and server CPU per message. Stops both servers by PID.
#
# usage: bench/h2probe.sh            # row A shape: 1 connection, 40,000 messages, 3 rounds
#        C=64 N=128000 bench/h2probe.sh   # row D shape: 64 connections
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-40000}; C=${C:-1}; RUNS=${RUNS:-3}
dotnet build "$repo/src/Sluice.Cli" -c Release >/dev/null
dotnet build "$repo/bench/Sluice.Bench" -c Release >/dev/null
dotnet build "$repo/bench/Sluice.H2Probe" -c Release >/dev/null
d=$(mktemp -d); mkdir -p "$d/data" "$d/js"; printf 'storage:\n  durability: never\n' > "$d/s.yaml"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); nport=$(free_port)
"$repo/src/Sluice.Cli/bin/Release/net10.0/sluice" serve --port "$port" --host 127.0.0.1 --data-dir "$d/data" -c "$d/s.yaml" --level warn >"$d/log" 2>&1 &
pid=$!
nats-server -a 127.0.0.1 -p "$nport" -js -sd "$d/js" >"$d/nlog" 2>&1 &
npid=$!
trap 'kill $pid $npid 2>/dev/null; wait $pid $npid 2>/dev/null; rm -rf "$d"' EXIT
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/$nport) 2>/dev/null && break; sleep 0.1; done
B=$repo/bench/Sluice.Bench/bin/Release/net10.0/sluice-bench
P=$repo/bench/Sluice.H2Probe/bin/Release/net10.0/sluice-h2probe
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
$B producer --target sluice --servers "127.0.0.1:$port" --create-stream -n 20000 -c "$C" --ms 256 >/dev/null
$B producer --target jetstream --servers "nats://127.0.0.1:$nport" --create-stream -n 20000 -c "$C" --ms 256 >/dev/null
$P "$port" bench-stream 20000 "$C" >/dev/null
for _ in $(seq "$RUNS"); do
  c0=$(cpu $pid); out=$($P "$port" bench-stream "$N" "$C"); c1=$(cpu $pid)
  echo "h2probe     $out  server cpu $(python3 -c "print(f'{($c1-$c0)*1e6/100/$N:.1f}')") us/msg"
  echo "sluice      $($B producer --target sluice --servers "127.0.0.1:$port" -n "$N" -c "$C" --ms 256 --server-pid $pid | grep -E 'throughput|server ' | sed 's/ \+/ /g' | tr '\n' ' ')"
  echo "jetstream   $($B producer --target jetstream --servers "nats://127.0.0.1:$nport" -n "$N" -c "$C" --ms 256 --server-pid $npid | grep -E 'throughput|server ' | sed 's/ \+/ /g' | tr '\n' ' ')"
done
