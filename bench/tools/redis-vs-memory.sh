#!/usr/bin/env bash
# Issue 15's "single node on Redis vs on the memory engine, fanout 1 -> 1,000: at least
# 0.8x the memory engine's deliveries/s": alternated rounds of one node on the memory
# engine and one node on a fresh redis-server, `bench fanout --raw` 1 publisher -> 1000
# raw subscribers, 100 B, 8 s. Server and redis-server on core 0, the load on core 1.
# Prints per run: engine, load average, the bench's JSON.
# Usage: bench/tools/redis-vs-memory.sh SERVER_BIN [ROUNDS (3)] [SHAPE ("--window 32")]
set -euo pipefail
bin=$1; rounds=${2:-3}; shape=${3:---window 32}
app=0123456789abcdef0123456789abcdef
ulimit -n 20000
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
run() { # engine
  local work; work=$(mktemp -d); local port; port=$(free_port)
  printf 'listen = "127.0.0.1:%s"\n[[apps]]\nid = "%s"\n[apps.limits]\npublish_rate_per_channel = 0\n' "$port" "$app" > "$work/b.toml"
  local extra=() rpid=""
  if [ "$1" = redis ]; then
    local rport; rport=$(free_port)
    taskset -c 0 redis-server --save "" --appendonly no --port "$rport" --bind 127.0.0.1 --dir "$work" >/dev/null 2>&1 & rpid=$!
    wait_port "$rport"; extra=(--engine redis --redis-url "redis://127.0.0.1:$rport" --node-id bench)
  fi
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$work/b.toml" --data-dir "$work/data" "${extra[@]}" >"$work/s.log" 2>&1 & local spid=$!
  wait_port "$port"
  local out; out=$(taskset -c 1 "$bin" bench fanout --raw --app-id "$app" --subscribers 1000 --size 100 $shape --duration 8 --url "ws://127.0.0.1:$port" --server-pid "$spid" 2>/dev/null | tail -1 || true)
  kill -INT "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
  [ -n "$rpid" ] && { kill "$rpid"; wait "$rpid" 2>/dev/null || true; }
  rm -rf "$work"
  echo "$1 $(cut -d' ' -f1 /proc/loadavg) $out"
}
for r in $(seq 1 "$rounds"); do run memory; run redis; done
