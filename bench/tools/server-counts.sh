#!/usr/bin/env bash
# Syscalls, context switches and CPU of a server process under one bench/compare shape,
# counted by the kernel (`perf stat` on the syscall tracepoints: exact counts, no
# hardware counters needed, little overhead). Or, with RECORD=FILE, a kernel+user
# cpu-clock profile with call graphs (`perf record -e cpu-clock -g`) instead.
# Usage: [PEER=switchboard|redis|nats] [SHAPE=p2p|w32|r20] [DURATION=8] [RECORD=FILE] \
#   [SB=switchboard binary] [LOAD=compare-load binary] bench/tools/server-counts.sh
# The server runs pinned to core 0 and the load to core 1, with the shapes and loads of
# bench/compare/run.sh (1,000 pairs window 8; 1 publisher → 1,000 subscribers, window 32
# or 20 msg/s; 100 B). Switchboard's load is `switchboard bench --raw`, the others'
# compare-load, as in run.sh. Counting covers the server's whole life (start-up,
# connecting, teardown): run two durations and take (difference) / (messages difference)
# for the cost of one more message. Prints one line of key=value counts.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
peer=${PEER:-switchboard}
shape=${SHAPE:-p2p}
duration=${DURATION:-8}
sb=${SB:-$root/target/release/switchboard}
load=${LOAD:-$root/target/release/compare-load}
app=0123456789abcdef0123456789abcdef
work=$(mktemp -d)
trap 'kill "${spid:-}" 2>/dev/null; rm -rf "$work"' EXIT
ulimit -n 20000
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
events=raw_syscalls:sys_enter,syscalls:sys_enter_write,syscalls:sys_enter_writev
events+=,syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_read
events+=,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_recvmsg
events+=,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait
events+=,syscalls:sys_enter_epoll_pwait2,syscalls:sys_enter_epoll_ctl
events+=,syscalls:sys_enter_futex,syscalls:sys_enter_madvise,syscalls:sys_enter_munmap
events+=,syscalls:sys_enter_mmap,syscalls:sys_enter_brk,page-faults,context-switches,task-clock
if [ -n "${RECORD:-}" ]; then
  wrap=(perf record -e cpu-clock -F 2000 -g -o "$RECORD" --)
else
  wrap=(perf stat -x, -e "$events" -o "$work/stat.csv" --)
fi
case $peer in
  switchboard)
    cat > "$work/bench.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$work/data"
[[apps]]
id = "$app"
[apps.limits]
publish_rate_per_channel = 0
TOML
    server=("$sb" serve --config "$work/bench.toml"); url=ws://127.0.0.1:$port ;;
  redis)
    server=(redis-server --save "" --appendonly no --port "$port" --bind 127.0.0.1
      --maxclients 20000 --dir "$work"); url=redis://127.0.0.1:$port/ ;;
  nats) server=(nats-server -a 127.0.0.1 -p "$port"); url=nats://127.0.0.1:$port ;;
  *) echo "PEER is switchboard, redis or nats" >&2; exit 2 ;;
esac
taskset -c 0 "${wrap[@]}" "${server[@]}" >"$work/serve.log" 2>&1 &
wrapper=$!
for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
spid=$(pgrep -P "$wrapper" | head -1)
case $shape in
  p2p) args=(p2p --pairs 1000 --window 8); field=messages ;;
  w32) args=(fanout --subscribers 1000 --window 32); field=deliveries ;;
  r20) args=(fanout --subscribers 1000 --rate 20); field=deliveries ;;
  *) echo "SHAPE is p2p, w32 or r20" >&2; exit 2 ;;
esac
common=(--size 100 --duration "$duration" --url "$url")
if [ "$peer" = switchboard ]; then
  taskset -c 1 "$sb" bench "${args[@]}" --raw --app-id "$app" "${common[@]}" 2>"$work/load.err" | grep '^{' | tail -1 > "$work/load.json"
else
  taskset -c 1 "$load" "${args[@]:0:1}" "$peer" "${args[@]:1}" "${common[@]}" 2>"$work/load.err" | grep '^{' | tail -1 > "$work/load.json"
fi
threads=$(ls "/proc/$spid/task" | wc -l)
# user and kernel CPU (ms) of the whole server process, from /proc (10 ms ticks)
read -r user_ms sys_ms < <(awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); print $12*1000/hz, $13*1000/hz}' "/proc/$spid/stat")
kill -INT "$spid"; wait "$wrapper" || true
messages=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/load.json" "$field")
# p2p: the round-trip percentiles and the spread of the per-side p99s, when the load reports them
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
if 'rtt_ms' in d:
    print('rtt_ms', json.dumps(d['rtt_ms']), 'rtt_p99_per_side_ms', json.dumps(d.get('rtt_p99_per_side_ms')),
          'messages_per_s', d.get('messages_per_s'))
" "$work/load.json"
if [ -n "${RECORD:-}" ]; then
  echo "peer=$peer shape=$shape duration=$duration messages=$messages threads=$threads profile=$RECORD"
  exit 0
fi
python3 - "$work/stat.csv" "$peer" "$shape" "$duration" "$messages" "$threads" "$user_ms" "$sys_ms" <<'PY'
import sys
path, peer, shape, duration, messages, threads, user_ms, sys_ms = sys.argv[1:]
out = [f"peer={peer}", f"shape={shape}", f"duration={duration}", f"messages={messages}", f"threads={threads}",
       f"user_ms={user_ms}", f"sys_ms={sys_ms}"]
for line in open(path):
    f = line.strip().split(",")
    if len(f) < 3 or line.startswith("#"):
        continue
    name = f[2].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "syscalls")
    v = f[0]
    if name == "task-clock":
        v = str(round(float(v)))   # ms of CPU
        name = "cpu_ms"
    out.append(f"{name}={v}")
print(" ".join(out))
PY
