#!/usr/bin/env bash
# Idle logged-in connections across several nodes on one Redis (issue 15: "5 nodes
# holding 90,000 idle logged-in connections together, RSS per connection reported").
# Starts a redis-server and NODES `switchboard serve --engine redis` processes, then one
# `switchboard bench connections` process per node (each process is capped at 20,000
# open files, so each node and each load process holds at most ~19,000), all at once,
# and prints each node's RSS per connection, the total, and Redis's RSS growth.
# Usage: bench/tools/idle-rss-cluster.sh SERVER_BIN [NODES (5)] [PER_NODE (18000)] [HOLD_S (30)]
# KEEP=1 keeps the nodes' logs (RUST_LOG passes through to them).
# CONCURRENCY (default 32): logins in progress at once per load process; with 5 nodes
# and 5 loads on 2 cores, 128 each starved handshakes past the 5 s handshake deadline.
set -euo pipefail
bin=$1; nodes=${2:-5}; per=${3:-18000}; hold=${4:-30}; concurrency=${CONCURRENCY:-32}
app=0123456789abcdef0123456789abcdef
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
ulimit -n 20000

rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis=$!; pids+=("$redis")
wait_port "$rport" || { echo "redis-server did not start" >&2; exit 1; }

ports=(); servers=()
for n in $(seq 1 "$nodes"); do
  port=$(free_port)
  cat >"$work/n$n.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data$n"
[[apps]]
id = "$app"
TOML
  "$bin" serve --config "$work/n$n.toml" --engine redis --redis-url "redis://127.0.0.1:$rport" \
    --node-id "node-$n" >"$work/s$n.log" 2>&1 &
  servers+=("$!"); pids+=("$!"); ports+=("$port")
done
for port in "${ports[@]}"; do wait_port "$port" || { echo "a node did not start" >&2; exit 1; }; done
redis_before=$(rss_kib "$redis")

loads=()
for n in $(seq 1 "$nodes"); do
  i=$((n - 1))
  "$bin" bench connections --count "$per" --duration "$hold" --concurrency "$concurrency" --url "ws://127.0.0.1:${ports[$i]}" \
    --app-id "$app" --server-pid "${servers[$i]}" --user-prefix "n$n-" \
    >"$work/load$n.json" 2>"$work/load$n.err" &
  loads+=("$!")
done
# Redis's memory at its highest while the load processes run (they hold every
# connection for HOLD_S seconds once all are open).
redis_peak=$redis_before
while kill -0 "${loads[0]}" 2>/dev/null; do
  r=$(rss_kib "$redis"); [ "$r" -gt "$redis_peak" ] && redis_peak=$r
  sleep 0.5
done
failed=0
for n in $(seq 1 "$nodes"); do
  wait "${loads[$((n - 1))]}" || { failed=1; echo "load $n failed:" >&2; tail -5 "$work/load$n.err" >&2; }
done
if [ "$failed" = 1 ]; then
  for n in $(seq 1 "$nodes"); do echo "node-$n log:" >&2; tail -5 "$work/s$n.log" >&2; done
  exit 1
fi

total=0; growth=0
for n in $(seq 1 "$nodes"); do
  line=$(tail -1 "$work/load$n.json")
  echo "node-$n: $line"
  total=$((total + $(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["live_at_end"])')))
  growth=$((growth + $(echo "$line" | python3 -c 'import json,sys; j=json.load(sys.stdin); print(j["rss_after_kib"]-j["rss_before_kib"])')))
done
echo "connections held: $total on $nodes nodes; server RSS growth $growth KiB in all: $((growth * 1024 / (total > 0 ? total : 1))) B per connection"
echo "redis-server RSS: $redis_before KiB before, $redis_peak KiB at most while they were held"
