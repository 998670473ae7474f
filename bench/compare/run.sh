#!/usr/bin/env bash
# Side-by-side fanout: Switchboard vs Redis pub/sub, NATS and Mosquitto (MQTT).
# Server pinned to core 0, load generator to core 1. Usage: bench/compare/run.sh
# Env: DURATION (s, default 10), SUBSCRIBERS (default 1000), SIZE (default 100),
#      PEERS (default "switchboard redis nats mqtt"), SHAPES (default "w32 w128 r20").
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
DURATION=${DURATION:-10}
SUBSCRIBERS=${SUBSCRIBERS:-1000}
SIZE=${SIZE:-100}
PEERS=${PEERS:-"switchboard redis nats mqtt"}
SHAPES=${SHAPES:-"w32 w128 r20"}
APP=0123456789abcdef0123456789abcdef
work="$here/run"
rm -rf "$work" && mkdir -p "$work"
ulimit -n 20000 || { echo "cannot raise open files to 20000" >&2; exit 1; }

# --- install what is missing -------------------------------------------------
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
    || { echo "apt-get install failed" >&2; exit 1; }
fi
export PATH="$PATH:/usr/sbin"
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
echo "building switchboard and compare-load (release)" >&2
(cd "$root" && cargo build -q --release -p switchboard-cli) || exit 1
(cd "$root" && cargo build -q --release --manifest-path bench/compare/load/Cargo.toml --target-dir target) || exit 1
SB="$root/target/release/switchboard"
LOAD="$root/target/release/compare-load"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 4333; }
wait_port() { # host port
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0; sleep 0.1; done
  echo "server did not listen on $1:$2" >&2; return 1
}

# --- servers ------------------------------------------------------------------
start_server() { # peer -> sets SPID, URL
  case $1 in
    switchboard)
      cat > "$work/bench.toml" <<TOML
listen = "127.0.0.1:7411"
[[apps]]
id = "$APP"
[apps.limits]
publish_rate_per_channel = 0
TOML
      taskset -c 0 "$SB" serve --config "$work/bench.toml" >"$work/switchboard.log" 2>&1 &
      SPID=$!; URL=ws://127.0.0.1:7411; wait_port 127.0.0.1 7411 ;;
    redis)
      taskset -c 0 redis-server --save "" --appendonly no --port 6399 --bind 127.0.0.1 \
        --maxclients 20000 --dir "$work" >"$work/redis.log" 2>&1 &
      SPID=$!; URL=redis://127.0.0.1:6399/; wait_port 127.0.0.1 6399 ;;
    nats)
      local port; port=$(free_port)
      taskset -c 0 nats-server -a 127.0.0.1 -p "$port" >"$work/nats.log" 2>&1 &
      SPID=$!; URL=nats://127.0.0.1:$port; wait_port 127.0.0.1 "$port" ;;
    mqtt)
      cat > "$work/mosquitto.conf" <<CONF
listener 1884 127.0.0.1
allow_anonymous true
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
CONF
      taskset -c 0 mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
      SPID=$!; URL=mqtt://127.0.0.1:1884; wait_port 127.0.0.1 1884 ;;
  esac
}
stop_server() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }

shape_args() { case $1 in w*) echo "--window ${1#w}";; r*) echo "--rate ${1#r}";; esac; }
shape_name() { case $1 in w*) echo "window ${1#w}";; r*) echo "rate ${1#r}/s";; esac; }

results="$work/results.jsonl"
: > "$results"
for peer in $PEERS; do
  for shape in $SHAPES; do
    echo "== $peer, $(shape_name "$shape"), $SUBSCRIBERS subscribers, $SIZE B, $DURATION s" >&2
    start_server "$peer" || { stop_server; continue; }
    sleep 0.3
    common=(--subscribers "$SUBSCRIBERS" --size "$SIZE" $(shape_args "$shape") --duration "$DURATION" --url "$URL" --server-pid "$SPID")
    out="$work/$peer-$shape.out"
    if [ "$peer" = switchboard ]; then
      taskset -c 1 "$SB" bench fanout --raw --app-id "$APP" "${common[@]}" >"$out" 2>"$work/$peer-$shape.err"
    else
      taskset -c 1 "$LOAD" fanout "$peer" "${common[@]}" >"$out" 2>"$work/$peer-$shape.err"
    fi
    rc=$?
    stop_server
    last=$(grep '^{' "$out" | tail -1)
    if [ -z "$last" ]; then
      echo "   no result (exit $rc): $(tail -2 "$work/$peer-$shape.err" | tr '\n' ' ')" >&2
      continue
    fi
    python3 - "$peer" "$shape" "$last" >>"$results" <<'PY'
import json, sys
peer, shape, line = sys.argv[1], sys.argv[2], sys.argv[3]
d = json.loads(line); d["peer"] = peer; d["shape"] = shape
print(json.dumps(d))
PY
    grep -E 'deliveries/s|latency p50|CPU' "$out" | sed 's/^/   /' >&2
  done
done

# --- table --------------------------------------------------------------------
python3 - "$results" "$DURATION" "$SUBSCRIBERS" "$SIZE" > "$work/table.md" <<'PY'
import json, sys, datetime, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
dur, subs, size = sys.argv[2], sys.argv[3], sys.argv[4]
names = {"w32": "window 32", "w128": "window 128", "r20": "rate 20/s"}
sb = {r["shape"]: r["deliveries_per_s"] for r in rows if r["peer"] == "switchboard"}
def pct(cpu, key):
    v = cpu.get(key); w = cpu.get("wall_s") or 0
    return f"{100 * v / w:.0f} %" if v is not None and w else "?"
def us(cpu, r):
    v = cpu.get("server_cpu_s")
    return f"{v * 1e6 / r['deliveries']:.1f}" if v is not None and r.get("deliveries") else "?"
print(f"Fanout, 1 publisher, {subs} subscribers (one connection each), {size} B, {dur} s per run, "
      f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores. "
      "Server pinned to core 0 (`taskset -c 0`), load generator to core 1 (`taskset -c 1`); "
      "CPU % is of one core over the run's wall time (connect + measure + drain). "
      "Load CPU near 100 % means the figure is bounded by the load generator, not the server; "
      "server µs / delivery (server CPU over the whole run divided by deliveries) is then the fairer comparison.\n")
print("| peer | shape | deliveries/s | p50 ms | p99 ms | missing | out of order | server CPU | server µs / delivery | load CPU | Switchboard / peer |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    lat, cpu = r["latency_ms"], r.get("cpu", {})
    ratio = "—"
    if r["peer"] != "switchboard" and r["shape"] in sb and r["deliveries_per_s"]:
        ratio = f"{sb[r['shape']] / r['deliveries_per_s']:.2f}"
    print(f"| {r['peer']} | {names.get(r['shape'], r['shape'])} | {r['deliveries_per_s']:,.0f} | "
          f"{lat['p50']:.1f} | {lat['p99']:.1f} | {r['missing']:,} | {r['out_of_order']:,} | "
          f"{pct(cpu, 'server_cpu_s')} | {us(cpu, r)} | {pct(cpu, 'load_cpu_s')} | {ratio} |")
PY
cat "$work/table.md"
cp "$work/table.md" "$here/results.md"
echo "(written to bench/compare/results.md; raw outputs in bench/compare/run/)" >&2
