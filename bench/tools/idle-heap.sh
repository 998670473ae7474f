#!/usr/bin/env bash
# Heap of idle logged-in connections by allocation site: runs the server under
# heaptrack, opens COUNT connections with `bench connections` (held 3 s), stops the
# server, and prints the heap at its peak per connection, grouped by the innermost
# switchboard frame and the two frames under it. SERVER_BIN must use the system
# allocator (heaptrack does not see mimalloc): a release build with the two
# `#[global_allocator]` lines of crates/cli/src/main.rs commented out.
# Usage: bench/tools/idle-heap.sh SERVER_BIN [LOAD_BIN] [COUNT (2000)] [OUT_DIR]
set -euo pipefail
bin=$1; load=${2:-$1}; count=${3:-2000}; out=${4:-$(mktemp -d)}
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
rm -f "$out/heap.zst"
heaptrack -o "$out/heap" "$bin" serve --config "$work/b.toml" > "$work/s.log" 2>&1 &
ht=$!
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
server=$(pgrep -f -- "--config $work/b.toml" | grep -vx "$ht" | tail -1)
"$load" bench connections --count "$count" --duration 3 --url "ws://127.0.0.1:$port" \
  --app-id "$app" --server-pid "$server" 2>/dev/null | tail -1
kill -INT "$server"; wait "$ht" || true
heaptrack_print -f "$out/heap.zst" --flamegraph-cost-type peak -F "$out/peak.stacks" >/dev/null 2>&1
python3 - "$out/peak.stacks" "$count" <<'PY'
import collections, re, sys
n = int(sys.argv[2]); agg = collections.Counter(); total = 0
def short(f):
    f = re.sub(r'::h[0-9a-f]{16}', '', f)
    for a, b in (('$u7b$$u7b$closure$u7d$$u7d$', '{closure}'), ('$LT$', '<'), ('$GT$', '>'),
                 ('$u20$', ' '), ('$C$', ','), ('..', '::')):
        f = f.replace(a, b)
    return f[:100]
for line in open(sys.argv[1]):
    stack, _, cost = line.rstrip('\n').rpartition(' ')
    cost = int(cost); total += cost
    frames = stack.split(';')
    idx = [i for i, f in enumerate(frames) if 'switchboard' in f]
    key = tuple(short(f) for f in frames[idx[-1]:idx[-1] + 3]) if idx else ('(outside switchboard)',)
    agg[key] += cost
print(f"heap at peak {total} B, {total / n:.0f} B per connection ({n} connections)")
for k, v in agg.most_common(30):
    print(f"{v / n:7.0f} B  " + '  <-  '.join(reversed(k)))
PY
echo "profile: $out/heap.zst"
