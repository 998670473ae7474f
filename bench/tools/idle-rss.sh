#!/usr/bin/env bash
# Server RSS per idle logged-in connection (switchboard bench connections against a
# separate server process). Usage: bench/tools/idle-rss.sh SERVER_BIN [LOAD_BIN] [COUNT]
set -euo pipefail
bin=$1; load=${2:-$1}; count=${3:-10000}
app=0123456789abcdef0123456789abcdef
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/b.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[[apps]]
id = "$app"
[apps.limits]
publish_rate_per_channel = 0
TOML
ulimit -n 20000
"$bin" serve --config "$work/b.toml" > "$work/s.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
"$load" bench connections --count "$count" --duration 3 --url "ws://127.0.0.1:$port" --app-id "$app" --server-pid "$server" 2>/dev/null | tail -1
kill -INT $server; wait $server || true
