#!/usr/bin/env bash
# Side by side: Switchboard vs Redis pub/sub, NATS, Mosquitto (MQTT), Socket.IO (Node),
# socketioxide and Sockudo (Pusher protocol), in the fanout and p2p shapes.
# Server pinned to core 0, load generator to core 1. Usage: bench/compare/run.sh
# Env: DURATION (s, default 10), RUNS (default 3), SUBSCRIBERS (1000), SIZE (100),
#      PAIRS (1000), P2P_WINDOW (8), SWITCHBOARD_BIN (a built switchboard: skip building it),
#      PEERS (default "switchboard redis nats mqtt socketio socketioxide sockudo"),
#      SHAPES (default "w32 w128 r20 p2p": fanout window 32 / 128, fanout rate 20/s, p2p).
# Each (peer, shape) cell runs RUNS times, peers alternating within each round (every
# peer's run 1, then every peer's run 2, …); the table gives medians.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-10}
RUNS=${RUNS:-3}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
SIZE=${SIZE:-100}
PAIRS=${PAIRS:-1000}
P2P_WINDOW=${P2P_WINDOW:-8}
PEERS=${PEERS:-"switchboard redis nats mqtt socketio socketioxide sockudo"}
SHAPES=${SHAPES:-"w32 w128 r20 p2p"}
APP=0123456789abcdef0123456789abcdef
SOCKUDO_VERSION=5.2.0
PUSHER_KEY=bench-key
PUSHER_SECRET=bench-secret
work="$here/run"
tools="$here/.tools"
results="$work/results.jsonl"
# TABLE_ONLY=1: only rebuild the tables from the last run's run/results.jsonl.
if [ -z "${TABLE_ONLY:-}" ]; then
rm -rf "$work" && mkdir -p "$work"
ulimit -n 20000 || { echo "cannot raise open files to 20000" >&2; exit 1; }
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
drop_peer() { PEERS=$(echo " $PEERS " | sed "s/ $1 / /g; s/^ *//; s/ *$//"); }

# --- install what is missing -------------------------------------------------
export PATH="$PATH:/usr/sbin"
missing=()
has_peer redis && ! command -v redis-server >/dev/null && missing+=(redis-server)
has_peer nats && ! command -v nats-server >/dev/null && missing+=(nats-server)
has_peer mqtt && ! command -v mosquitto >/dev/null && missing+=(mosquitto)
if has_peer socketio; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if has_peer sockudo && [ ! -x "$tools/bin/sockudo" ]; then
  command -v protoc >/dev/null || missing+=(protobuf-compiler)
  command -v cmake >/dev/null || missing+=(cmake)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
    || { echo "apt-get install failed" >&2; exit 1; }
fi
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }

if [ -n "${SWITCHBOARD_BIN:-}" ]; then
  SB=$SWITCHBOARD_BIN   # a switchboard binary built elsewhere (e.g. from a clean checkout)
else
  echo "building switchboard (release, from the working tree)" >&2
  (cd "$root" && cargo build -q --release -p switchboard-cli) || exit 1
  SB="$root/target/release/switchboard"
fi
echo "building compare-load (release)" >&2
(cd "$root" && cargo build -q --release --manifest-path bench/compare/load/Cargo.toml --target-dir target) || exit 1
LOAD="$root/target/release/compare-load"
if has_peer socketioxide; then
  (cd "$root" && cargo build -q --release --manifest-path bench/compare/socketioxide/Cargo.toml --target-dir target) \
    || { echo "socketioxide build failed: skipping it" >&2; drop_peer socketioxide; }
fi
if has_peer socketio && { [ ! -d "$here/socketio/node_modules/socket.io" ] \
     || [ "$here/socketio/package-lock.json" -nt "$here/socketio/node_modules/.package-lock.json" ]; }; then
  echo "npm ci (socket.io)" >&2
  (cd "$here/socketio" && npm ci --no-audit --no-fund --loglevel=error >&2) \
    || { echo "npm ci failed: skipping socketio" >&2; drop_peer socketio; }
fi
if has_peer sockudo && [ ! -x "$tools/bin/sockudo" ]; then
  # Large (several hundred crates): built once into bench/compare/.tools, outside CI.
  echo "cargo install sockudo $SOCKUDO_VERSION (minimal features; slow the first time)" >&2
  (cd "$root" && cargo install -q sockudo --version "$SOCKUDO_VERSION" --locked \
     --no-default-features --features local,recovery --root "$tools" --target-dir target/sockudo >&2) \
    || { echo "sockudo build failed: skipping it (see bench/compare/README.md)" >&2; drop_peer sockudo; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # host port
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not listen on $1:$2" >&2; return 1
}

# --- servers ------------------------------------------------------------------
# Every server listens on a fresh free port of 127.0.0.1 (another bench on the machine
# may hold the usual ones), and must still be running once the port answers.
start_server() { # peer tag -> sets SPID, URL
  local log="$work/$1-$2.server.log" port; port=$(free_port)
  start_peer "$1" "$log" "$port" || return 1
  kill -0 "$SPID" 2>/dev/null || { echo "$1 exited: $(tail -2 "$log")" >&2; return 1; }
}
start_peer() { # peer log port
  local log=$2 port=$3
  case $1 in
    switchboard)
      cat > "$work/bench.toml" <<TOML
listen = "127.0.0.1:$port"
[[apps]]
id = "$APP"
[apps.limits]
publish_rate_per_channel = 0
TOML
      taskset -c 0 "$SB" serve --config "$work/bench.toml" >"$log" 2>&1 &
      SPID=$!; URL=ws://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    redis)
      taskset -c 0 redis-server --save "" --appendonly no --port "$port" --bind 127.0.0.1 \
        --maxclients 20000 --dir "$work" >"$log" 2>&1 &
      SPID=$!; URL=redis://127.0.0.1:$port/; wait_port 127.0.0.1 "$port" ;;
    nats)
      taskset -c 0 nats-server -a 127.0.0.1 -p "$port" >"$log" 2>&1 &
      SPID=$!; URL=nats://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    mqtt)
      cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
CONF
      taskset -c 0 mosquitto -c "$work/mosquitto.conf" >"$log" 2>&1 &
      SPID=$!; URL=mqtt://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    socketio)
      PORT=$port taskset -c 0 node "$here/socketio/server.js" >"$log" 2>&1 &
      SPID=$!; URL=ws://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    socketioxide)
      taskset -c 0 "$root/target/release/compare-socketioxide" "127.0.0.1:$port" >"$log" 2>&1 &
      SPID=$!; URL=ws://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    sockudo)
      # No config file (it looks for config/config.{toml,json} in its working
      # directory): defaults plus one app from the environment, client events on and
      # not rate limited, no metrics listener, no HTTP API rate limiter.
      taskset -c 0 env -C "$work" HOST=127.0.0.1 PORT=$port METRICS_ENABLED=false \
        RATE_LIMITER_ENABLED=false DEBUG=false RUST_LOG=warn SOCKUDO_MAX_CONNECTIONS=20000 \
        SOCKUDO_DEFAULT_APP_ID=bench SOCKUDO_DEFAULT_APP_KEY=$PUSHER_KEY \
        SOCKUDO_DEFAULT_APP_SECRET=$PUSHER_SECRET SOCKUDO_DEFAULT_APP_ENABLED=true \
        SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=20000 SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true \
        SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=0 \
        "$tools/bin/sockudo" >"$log" 2>&1 &
      SPID=$!; URL=ws://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
  esac
}
stop_server() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; sleep 0.2; }

shape_args() {
  case $1 in
    w*) echo "--subscribers $SUBSCRIBERS --window ${1#w}" ;;
    r*) echo "--subscribers $SUBSCRIBERS --rate ${1#r}" ;;
    p2p) echo "--pairs $PAIRS --window $P2P_WINDOW" ;;
  esac
}
shape_name() { case $1 in w*) echo "window ${1#w}";; r*) echo "rate ${1#r}/s";; p2p) echo "p2p $PAIRS pairs, window $P2P_WINDOW";; esac; }
scenario() { [ "$1" = p2p ] && echo p2p || echo fanout; }
# Busy seconds of cores 0 and 1 so far (user+nice+system+irq+softirq+steal), to tell how
# much of each core went to processes other than the server and the load generator
# (another bench or build on the machine: not always visible from here).
core_busy() { awk '/^cpu[01] /{printf "%.2f ", ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }

: > "$results"
for run in $(seq 1 "$RUNS"); do
  for shape in $SHAPES; do
    for peer in $PEERS; do
      tag="$shape-$run"
      echo "== run $run/$RUNS: $peer, $(shape_name "$shape"), $SIZE B, $DURATION s" >&2
      start_server "$peer" "$tag" || { stop_server; continue; }
      sleep 0.3
      common=(--size "$SIZE" $(shape_args "$shape") --duration "$DURATION" --url "$URL" --server-pid "$SPID")
      out="$work/$peer-$tag.out"
      busy0=$(core_busy); t0=$(date +%s.%N)
      if [ "$peer" = switchboard ]; then
        taskset -c 1 "$SB" bench "$(scenario "$shape")" --raw --app-id "$APP" "${common[@]}" >"$out" 2>"$work/$peer-$tag.err"
      else
        taskset -c 1 "$LOAD" "$(scenario "$shape")" "$peer" "${common[@]}" \
          --app-key "$PUSHER_KEY" --app-secret "$PUSHER_SECRET" >"$out" 2>"$work/$peer-$tag.err"
      fi
      rc=$?
      busy1=$(core_busy); t1=$(date +%s.%N)
      stop_server
      last=$(grep '^{' "$out" | tail -1)
      if [ -z "$last" ]; then
        why=$(grep -v '^ \+[0-9]*:\|^ \+at \|^$\|Stack backtrace' "$work/$peer-$tag.err" | tail -1)
        echo "   no result (exit $rc): $why" >&2
        # Kept as a failed run (listed in the table, left out of the medians).
        last=$(python3 -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "failed": sys.argv[2]}))' \
          "$(scenario "$shape")" "$why")
      fi
      python3 - "$peer" "$shape" "$run" "$last" "$busy0" "$busy1" "$t0" "$t1" >>"$results" <<'PY'
import json, sys
peer, shape, run, line = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
b0, b1 = [float(x) for x in sys.argv[5].split()], [float(x) for x in sys.argv[6].split()]
d = json.loads(line); d["peer"] = peer; d["shape"] = shape; d["run"] = run
c = d.get("cpu", {})
# What else ran on each core during the run (the bench process's own share excluded).
d["others"] = {"wall_s": float(sys.argv[8]) - float(sys.argv[7]),
               "core0_s": b1[0] - b0[0] - (c.get("server_cpu_s") or 0),
               "core1_s": b1[1] - b0[1] - (c.get("load_cpu_s") or 0)}
print(json.dumps(d))
PY
      grep -E 'deliveries/s|messages/s|latency p50|rtt p50|missing|CPU' "$out" | sed 's/^/   /' >&2
    done
  done
done

fi

# --- tables -------------------------------------------------------------------
PEERS="$PEERS" SHAPES="$SHAPES" python3 - "$results" > "$work/table.md" <<'PY'
import json, sys, datetime, os, statistics
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
if not rows:
    sys.exit("no results")
def first(key, scen):
    return next((r[key] for r in rows if key in r and r["scenario"] == scen),
                next((r[key] for r in rows if key in r), "?"))
dur = first("duration_s", "fanout")
runs = max(r["run"] for r in rows)
subs, size = first("subscribers", "fanout"), first("size", "fanout")
pairs, p2pw = first("pairs", "p2p"), first("window", "p2p")
names = {"w32": "window 32", "w128": "window 128", "r20": "rate 20/s", "w1": "window 1"}
# Every peer's JSON must have the keys of switchboard's for the same scenario.
ref = {}
for r in [r for r in rows if "failed" not in r]:
    if r["peer"] == "switchboard":
        ref.setdefault(r["scenario"], set(r))
for r in [r for r in rows if "failed" not in r]:
    k = ref.get(r["scenario"])
    if k is not None and set(r) != k:  # both have peer, shape, run, others added here
        print(f"warning: {r['peer']} {r['shape']} JSON keys differ: {sorted(set(r) ^ k)}", file=sys.stderr)

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def cpu_pct(r, key):
    c = r.get("cpu", {}); v = c.get(key); w = c.get("wall_s")
    return 100 * v / w if v is not None and w else None
def others(rs):
    def pct(r, core):
        o = r.get("others", {}); w = o.get("wall_s")
        return max(0, 100 * o[core] / w) if w else None
    return f"{f(med([pct(r, 'core0_s') for r in rs]), '.0f')} / {f(med([pct(r, 'core1_s') for r in rs]), '.0f')} %"
def us_per(r, count_key):
    v = r.get("cpu", {}).get("server_cpu_s"); n = r.get(count_key)
    return v * 1e6 / n if v is not None and n else None
def f(v, fmt):
    return "?" if v is None else format(v, fmt)
def k(v):
    return "?" if v is None else (f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v:,.0f}")

cells = {}
for r in rows:
    cells.setdefault((r["peer"], r["shape"]), []).append(r)
def ok(rs):
    return [r for r in rs if "failed" not in r]
peer_order = os.environ.get("PEERS", "").split()
shape_order = os.environ.get("SHAPES", "").split()
def rank(xs, x):
    return xs.index(x) if x in xs else len(xs)
order = sorted(cells, key=lambda k: (rank(shape_order, k[1]), k[1], rank(peer_order, k[0]), k[0]))
# A run is flagged as disturbed when the rest of the machine took more than 10 % of
# the server's or the load's core (closed loop and p2p keep those cores busy).
def disturbed(r):
    o = r.get("others", {}); w = o.get("wall_s")
    limit = 0.50 if r["shape"][0] == "r" else 0.10
    return bool(w) and max(o["core0_s"], o["core1_s"]) > limit * w
def runs_list(rs, key):
    return " / ".join(("failed" if "failed" in r else k(r[key])) + ("*" if disturbed(r) else "") for r in rs)
def total(rs, key):
    rs = [r for r in rs if "failed" not in r]
    t = sum(r[key] for r in rs)
    star = "*" if t and all(disturbed(r) for r in rs if r[key]) else ""
    return f"{t:,}{star}"

# When the last run ended (the results file's time), not when the table was made.
now = datetime.datetime.fromtimestamp(os.path.getmtime(sys.argv[1]), datetime.timezone.utc)
print(f"{now:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {dur} s per run, {runs} run(s) per cell, "
      "peers alternating within each round. Server pinned to core 0 (`taskset -c 0`), load generator "
      "to core 1 (`taskset -c 1`). Figures are medians over the runs (\"runs\" lists each run's); "
      "missing / out of order are totals over all runs. CPU % is of one core over the run's wall time "
      "(connect + measure + drain). Load CPU near 100 % means the figure is bounded by the load "
      "generator, not the server; server µs per delivery / message (server CPU over the whole run "
      "divided by what was delivered) is then the fairer comparison. \"Others\" is what the rest of "
      "the machine (other benches, builds) took of core 0 / core 1 during the run (median); a run where it "
      "exceeded 10 % of either core (50 % in open loop, whose cores are otherwise mostly idle) is marked * "
      "(disturbed), and so is a missing / out-of-order total that comes only from such runs.\n")

fan = [key for key in order if key[1] != "p2p"]
if fan:
    sb = {s: med([r["deliveries_per_s"] for r in ok(cells[(p, s)])]) for (p, s) in fan if p == "switchboard"}
    print(f"**Fanout**: 1 publisher, {subs} subscribers (one connection each), {size} B payloads.\n")
    print("| peer | shape | deliveries/s | runs | p50 ms | p99 ms | missing | out of order | server CPU | server µs / delivery | load CPU | others | Switchboard / peer |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    shapes = []
    for _, s in fan:
        if s not in shapes:
            shapes.append(s)
    for s in shapes:
        for (p, s2) in fan:
            if s2 != s:
                continue
            rs = sorted(cells[(p, s)], key=lambda r: r["run"]); g = ok(rs)
            d = med([r["deliveries_per_s"] for r in g])
            ratio = "—"
            if p != "switchboard" and sb.get(s) and d:
                ratio = f"{sb[s] / d:.2f}"
            print(f"| {p} | {names.get(s, s)} | {f(d, ',.0f')} | {runs_list(rs, 'deliveries_per_s')} | "
                  f"{f(med([r['latency_ms']['p50'] for r in g]), '.1f')} | {f(med([r['latency_ms']['p99'] for r in g]), '.1f')} | "
                  f"{total(rs, 'missing')} | {total(rs, 'out_of_order')} | "
                  f"{f(med([cpu_pct(r, 'server_cpu_s') for r in g]), '.0f')} % | {f(med([us_per(r, 'deliveries') for r in g]), '.2f')} | "
                  f"{f(med([cpu_pct(r, 'load_cpu_s') for r in g]), '.0f')} % | {others(rs)} | {ratio} |")
    print()

p2p = [key for key in order if key[1] == "p2p"]
if p2p:
    sbm = med([r["messages_per_s"] for r in ok(cells.get(("switchboard", "p2p"), []))])
    print(f"**p2p**: {pairs} pairs of users (two connections each), each side at most {p2pw} origins in flight, "
          f"every origin echoed back; messages/s counts origins and echoes delivered; {size} B payloads.\n")
    print("| peer | messages/s | runs | round trips/s | rtt p50 ms | rtt p99 ms | missing | out of order | errors | server CPU | server µs / message | load CPU | others | Switchboard / peer |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in p2p:
        p = key[0]; rs = sorted(cells[key], key=lambda r: r["run"]); g = ok(rs)
        m = med([r["messages_per_s"] for r in g])
        ratio = f"{sbm / m:.2f}" if p != "switchboard" and sbm and m else "—"
        print(f"| {p} | {f(m, ',.0f')} | {runs_list(rs, 'messages_per_s')} | "
              f"{f(med([r['round_trips_per_s'] for r in g]), ',.0f')} | "
              f"{f(med([r['rtt_ms']['p50'] for r in g]), '.1f')} | {f(med([r['rtt_ms']['p99'] for r in g]), '.1f')} | "
              f"{total(rs, 'missing')} | {total(rs, 'out_of_order')} | {total(rs, 'errors')} | "
              f"{f(med([cpu_pct(r, 'server_cpu_s') for r in g]), '.0f')} % | {f(med([us_per(r, 'messages') for r in g]), '.2f')} | "
              f"{f(med([cpu_pct(r, 'load_cpu_s') for r in g]), '.0f')} % | {others(rs)} | {ratio} |")
PY
cat "$work/table.md"
cp "$work/table.md" "$here/results.md"
echo "(written to bench/compare/results.md; raw outputs in bench/compare/run/)" >&2
