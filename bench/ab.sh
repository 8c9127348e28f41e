#!/usr/bin/env bash
# A/B one Sluice build on one workload: starts that checkout's Release `sluice serve` (durability never)
# on a free 127.0.0.1 port with a temp data dir, warms it up, runs `sluice-bench` RUNS times (default 5)
# and prints max/median msgs/s and min/median of: server and client CPU per message, server and client
# context switches per message (all server threads, from /proc; the client's from /usr/bin/time) and
# the server's peak RSS. Stops the server by PID. Compare two checkouts (e.g. a worktree at the old
# commit) back to back; min and median are steadier than single runs on a noisy 2-core VM.
#
# usage: bench/ab.sh <checkout> <label> <sluice-bench producer args...>
#   bench/ab.sh . new -n 30000 --pub-batch 1
#   MODE=consumer bench/ab.sh . new -n 200000           # fill a stream, then time consuming it
#   SERVER_ENV=DOTNET_GCgen0size=0x400000 bench/ab.sh . gen0 -n 60000 --pub-batch 1 -c 64
#   WARM=300000 bench/ab.sh . new -n 600000 --pub-batch 100   # a longer warm-up (two runs of WARM messages; default 20000)
#   CLIENT_ENV=DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 bench/ab.sh . inl -n 40000 --pub-batch 1   # environment of the timed client
#   SERVER_BIN=artifacts/aot/linux-x64/sluice bench/ab.sh . aot -n 30000 --pub-batch 1   # another server binary (e.g. Native AOT); the client is still the checkout's
# Also prints the server's RSS when idle after start (before any client) and its start time (spawn until the port accepts).
set -u
repo=$(cd "$1" && pwd); label=$2; shift 2
server_bin=${SERVER_BIN:-$repo/src/Sluice.Cli/bin/Release/net10.0/sluice}
server_bin=$(cd "$(dirname "$server_bin")" && pwd)/$(basename "$server_bin")
RUNS=${RUNS:-5}
d=$(mktemp -d); mkdir -p $d/data $d/run; printf 'storage:\n  durability: never\n' > $d/s.yaml
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
t0=$(date +%s%N)
(cd $d/run && exec env ${SERVER_ENV:-X_NONE=1} $server_bin serve --port $port --host 127.0.0.1 --data-dir $d/data -c $d/s.yaml --level warn >$d/log 2>&1) &
pid=$!
for i in $(seq 1000); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.01; done
start_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
sleep 2; idle_rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$pid/status)
B=$repo/bench/Sluice.Bench/bin/Release/net10.0/sluice-bench
MODE=${MODE:-producer}
if [ "$MODE" = consumer ]; then
  $B producer --target sluice --servers 127.0.0.1:$port --stream e --subject e --create-stream "$@" --pb 100 --ms 256 >/dev/null 2>&1
  $B consumer --target sluice --servers 127.0.0.1:$port --stream e --subject e "$@" --ms 256 >/dev/null 2>&1
  set -- --stream e --subject e "$@"
else
$B producer --target sluice --servers 127.0.0.1:$port --create-stream -n ${WARM:-20000} "$@" --ms 256 >/dev/null 2>&1
$B producer --target sluice --servers 127.0.0.1:$port -n ${WARM:-20000} "$@" --ms 256 >/dev/null 2>&1
fi
ctx() { cat /proc/$pid/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s+=$2} END {print s}'; }
for r in $(seq $RUNS); do
  c0=$(ctx)
  /usr/bin/time -f "%w %c" -o $d/time env ${CLIENT_ENV:-X_NONE=1} $B $MODE --target sluice --servers 127.0.0.1:$port "$@" --ms 256 --server-pid $pid --output json 2>/dev/null > $d/out.json
  c1=$(ctx)
  python3 - $d/out.json $d/time $c0 $c1 <<'PY' >> $d/lines
import json,sys
d=json.load(open(sys.argv[1])); t=open(sys.argv[2]).read().split()
n=d['messages'] if 'messages' in d else d.get('count', 0)
print(d['msgs_per_sec'], d['server']['cpu_us_per_msg'], d['client']['cpu_us_per_msg'], (int(sys.argv[4])-int(sys.argv[3]))/max(n,1), (int(t[0])+int(t[1]))/max(n,1), d['server']['peak_rss_kb']/1024)
PY
done
python3 - "$label" $d/lines $start_ms $idle_rss <<'PY'
import sys,statistics as st
rows=[list(map(float,l.split())) for l in open(sys.argv[2])]
c=list(zip(*rows))
f=lambda i: f"{min(c[i]):.1f}/{st.median(c[i]):.1f}"
print(f"{sys.argv[1]:5} msg/s max/med {max(c[0]):,.0f}/{st.median(c[0]):,.0f}  srv us min/med {f(1)}  cli us {f(2)}  srv ctxsw/msg {f(3)}  cli ctxsw/msg {f(4)}  rss MiB {f(5)}  start ms {sys.argv[3]}  idle rss MiB {sys.argv[4]}")
PY
kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
