#!/usr/bin/env bash
# Server instructions per p2p message under callgrind: a figure that repeats within
# ~0.5 % on this noisy machine (wall-clock runs vary by ±20 %). User space only.
# Usage: [SHAPE=p2p|fanout|rate] [DURATION=10] [LOAD=BINARY] \
#   bench/tools/p2p-callgrind.sh [SWITCHBOARD_BINARY]   (default: release build)
# SHAPE p2p: 50 pairs, window 4; fanout: 1 publisher → 200 raw subscribers, window 32;
# rate: the same at 20 messages/s (nothing coalesces; SUBS=N for N subscribers). LOAD runs the load generator (by
# default the server binary; give both builds the same one when comparing them).
# CG_ARGS adds callgrind options (e.g. --cache-sim=yes: simulated cache misses).
# KEEP=FILE keeps the callgrind output (for callgrind_annotate --inclusive=yes).
# Run it for two durations: (instructions difference) / (messages difference) is the
# cost of one more message, without start-up and connection set-up.
# PEER=redis: redis-server under callgrind instead, loaded by compare-load (LOAD then
# names a compare-load binary, default target/release/compare-load), same shapes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/switchboard}
peer=${PEER:-switchboard}
if [ "$peer" = redis ]; then load=${LOAD:-$root/target/release/compare-load}; else load=${LOAD:-$bin}; fi
shape=${SHAPE:-p2p}
duration=${DURATION:-10}
app=0123456789abcdef0123456789abcdef
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/bench.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[[apps]]
id = "$app"
[apps.limits]
publish_rate_per_channel = 0
TOML
ulimit -n 20000
if [ "$peer" = redis ]; then
  server=(redis-server --save "" --appendonly no --port "$port" --bind 127.0.0.1 --maxclients 20000 --dir "$work")
  url=redis://127.0.0.1:$port/
else
  server=("$bin" serve --config "$work/bench.toml"); url=ws://127.0.0.1:$port
fi
taskset -c 0 valgrind --tool=callgrind ${CG_ARGS:-} --callgrind-out-file="$work/cg.out" \
  "${server[@]}" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
case $shape in
  p2p) args=(p2p --raw --pairs 50 --window 4); field=messages ;;
  fanout) args=(fanout --raw --subscribers 200 --window 32); field=deliveries ;;
  rate) args=(fanout --raw --subscribers "${SUBS:-200}" --rate 20); field=deliveries ;;
  *) echo "SHAPE is p2p, fanout or rate" >&2; exit 2 ;;
esac
if [ "$peer" = redis ]; then
  taskset -c 1 "$load" "${args[0]}" redis "${args[@]:2}" --duration "$duration" \
    --url "$url" 2>/dev/null | grep '^{' | tail -1 > "$work/p2p.json"
else
  taskset -c 1 "$load" bench "${args[@]}" --duration "$duration" \
    --url "$url" --app-id "$app" 2>/dev/null | tail -1 > "$work/p2p.json"
fi
kill -INT "$server"; wait "$server" || true
messages=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/p2p.json" "$field")
callgrind_annotate "$work/cg.out" > "$work/annotate.txt" 2>/dev/null
ir=$(awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}' "$work/annotate.txt")
# With --cache-sim=yes: every event's total (Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw).
events=$(awk '/^Events recorded:/ {$1=$2=""; print; exit}' "$work/annotate.txt")
totals=$(grep 'PROGRAM TOTALS' "$work/annotate.txt" | sed 's/([^)]*)//g; s/PROGRAM TOTALS//')
[ -n "${CG_ARGS:-}" ] && echo "events:$events totals: $totals"

[ -n "${KEEP:-}" ] && cp "$work/cg.out" "$KEEP"
echo "$peer $shape ${duration}s messages $messages  instructions $ir  per message $((ir / messages))"
