#!/usr/bin/env bash
# Cross-node publish -> delivery latency (issue 15: "cross-node delivery adds at most
# 2 ms to p50 publish->delivery latency at 20 msg/s"). Per round, alternated:
#   memory  one node on the memory engine, publisher and subscribers on it;
#   same    two nodes on one Redis, publisher and subscribers on node B;
#   cross   the same two nodes, publisher on node A, subscribers on node B.
# Servers and redis-server on core 0, the load (`switchboard bench fanout --raw`) on
# core 1. Prints one line per run: setup, then the bench's JSON.
# Usage: bench/tools/cross-node.sh SERVER_BIN [ROUNDS (3)] [SUBSCRIBERS (1000)] [RATE (20)] [DURATION (10)]
set -euo pipefail
bin=$1; rounds=${2:-3}; subs=${3:-1000}; rate=${4:-20}; duration=${5:-10}
app=0123456789abcdef0123456789abcdef
ulimit -n 20000
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
node() { # name port [redis args...]: starts a node, prints its pid
  local name=$1 port=$2; shift 2
  printf 'listen = "127.0.0.1:%s"\n[[apps]]\nid = "%s"\n[apps.limits]\npublish_rate_per_channel = 0\n' \
    "$port" "$app" >"$work/$name.toml"
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$work/$name.toml" --data-dir "$work/$name" "$@" \
    >"$work/$name.log" 2>&1 &
  echo $!
}
bench() { # subscribers' url, publisher's url, server pid
  taskset -c 1 "$bin" bench fanout --raw --app-id "$app" --subscribers "$subs" --size 100 \
    --rate "$rate" --duration "$duration" --url "$1" --publish-url "$2" --server-pid "$3" \
    2>"$work/bench.err" | tail -1 || { cat "$work/bench.err" >&2; return 1; }
}
for r in $(seq 1 "$rounds"); do
  p=$(free_port); m=$(node mem "$p"); pids+=("$m"); wait_port "$p"
  echo "memory $(bench "ws://127.0.0.1:$p" "ws://127.0.0.1:$p" "$m")"
  kill -INT "$m"; wait "$m" 2>/dev/null || true

  rport=$(free_port)
  taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  rp=$!; pids+=("$rp"); wait_port "$rport"
  pa=$(free_port); a=$(node a$r "$pa" --engine redis --redis-url "redis://127.0.0.1:$rport" --node-id a); pids+=("$a")
  pb=$(free_port); b=$(node b$r "$pb" --engine redis --redis-url "redis://127.0.0.1:$rport" --node-id b); pids+=("$b")
  wait_port "$pa"; wait_port "$pb"
  echo "same $(bench "ws://127.0.0.1:$pb" "ws://127.0.0.1:$pb" "$b")"
  echo "cross $(bench "ws://127.0.0.1:$pb" "ws://127.0.0.1:$pa" "$b")"
  kill -INT "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
  kill "$rp"; wait "$rp" 2>/dev/null || true
done
