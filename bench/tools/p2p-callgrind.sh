#!/usr/bin/env bash
# Server instructions per p2p message under callgrind: a figure that repeats within
# ~0.5 % on this noisy machine (wall-clock runs vary by ±20 %). User space only.
# Usage: bench/tools/p2p-callgrind.sh [SWITCHBOARD_BINARY]   (default: release build)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/switchboard}
app=0123456789abcdef0123456789abcdef
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
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
taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
  "$bin" serve --config "$work/bench.toml" >"$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
taskset -c 1 "$bin" bench p2p --raw --pairs 50 --window 4 --duration 10 \
  --url "ws://127.0.0.1:$port" --app-id "$app" 2>/dev/null | tail -1 > "$work/p2p.json"
kill -INT "$server"; wait "$server" || true
messages=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['messages'])" "$work/p2p.json")
callgrind_annotate "$work/cg.out" > "$work/annotate.txt" 2>/dev/null
ir=$(awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1; exit}' "$work/annotate.txt")
echo "messages $messages  instructions $ir  per message $((ir / messages))"
