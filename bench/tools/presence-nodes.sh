#!/usr/bin/env bash
# Presence churn across nodes (issue 15's "presence churn" bench): MEMBERS members with
# presence on in one channel and 50 churners joining and leaving at CHURN changes/s, in
# interval mode (threshold 50, 1 s interval, 0.5 s debounce). Per round, alternated:
#   memory  one node on the memory engine;
#   redis1  one node on Redis, members and churners on it;
#   redis2  two nodes on one Redis, members on node B, churners on node A.
# Servers and redis-server on core 0, the load on core 1. Prints per run the bench's
# events/s and changes carried, and the CPU seconds of node A, node B and Redis over
# the whole bench (logins and subscribes included).
# Usage: bench/tools/presence-nodes.sh SERVER_BIN [ROUNDS (3)] [MEMBERS (1000)] [CHURN (100)] [DURATION (8)]
set -euo pipefail
bin=$1; rounds=${2:-3}; members=${3:-1000}; churn=${4:-100}; duration=${5:-8}
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
cpu_s() { # utime+stime of a pid, seconds ("-" without one)
  [ -n "${1:-}" ] || { echo -; return; }
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}
node() { # name port [args...]: starts a node, prints its pid
  local name=$1 port=$2; shift 2
  cat >"$work/$name.toml" <<TOML
listen = "127.0.0.1:$port"
[[apps]]
id = "$app"
[apps.limits]
presence_interval_threshold = 50
presence_interval_ms = 1000
presence_interval_debounce_ms = 500
TOML
  RUST_LOG=warn taskset -c 0 "$bin" serve --config "$work/$name.toml" --data-dir "$work/$name" "$@" \
    >"$work/$name.log" 2>&1 &
  echo $!
}
run() { # label members-url churn-url pidA pidB pidRedis
  local a0 b0 r0 out
  a0=$(cpu_s "$4"); b0=$(cpu_s "$5"); r0=$(cpu_s "$6")
  out=$(taskset -c 1 "$bin" bench presence --app-id "$app" --members "$members" --churners 50 \
    --churn "$churn" --duration "$duration" --url "$2" --churn-url "$3" 2>"$work/bench.err" | tail -1) \
    || { cat "$work/bench.err" >&2; return 1; }
  echo "$1 $(python3 -c "
import json,sys
j=json.loads(sys.argv[1])
def d(a,b): return '-' if a=='-' else f'{float(b)-float(a):.2f}'
print(json.dumps({'events_per_s':j.get('events_per_s'),'changes':j.get('changes_carried'),'intervals':j.get('interval_events'),'joins_leaves':j.get('joins_leaves'),'errors':j.get('errors'),
 'cpu_a':d(sys.argv[2],sys.argv[5]),'cpu_b':d(sys.argv[3],sys.argv[6]),'cpu_redis':d(sys.argv[4],sys.argv[7])}))
" "$out" "$a0" "$b0" "$r0" "$(cpu_s "$4")" "$(cpu_s "$5")" "$(cpu_s "$6")") $out"
}
for r in $(seq 1 "$rounds"); do
  p=$(free_port); m=$(node mem$r "$p"); pids+=("$m"); wait_port "$p"
  run memory "ws://127.0.0.1:$p" "ws://127.0.0.1:$p" "" "$m" ""
  kill -INT "$m"; wait "$m" 2>/dev/null || true

  rport=$(free_port)
  taskset -c 0 redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
  rp=$!; pids+=("$rp"); wait_port "$rport"
  pa=$(free_port); a=$(node a$r "$pa" --engine redis --redis-url "redis://127.0.0.1:$rport" --node-id a); pids+=("$a")
  pb=$(free_port); b=$(node b$r "$pb" --engine redis --redis-url "redis://127.0.0.1:$rport" --node-id b); pids+=("$b")
  wait_port "$pa"; wait_port "$pb"
  run redis1 "ws://127.0.0.1:$pb" "ws://127.0.0.1:$pb" "$a" "$b" "$rp"
  run redis2 "ws://127.0.0.1:$pb" "ws://127.0.0.1:$pa" "$a" "$b" "$rp"
  kill -INT "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
  kill "$rp"; wait "$rp" 2>/dev/null || true
done
