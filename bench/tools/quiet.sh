#!/usr/bin/env bash
# Lowers every other session's scheduling group to nice 19 before a benchmark, and
# `quiet.sh restore` sets them back to 0. On these machines the kernel has
# sched_autogroup_enabled=1: plain `nice` only weighs inside one session's group, so
# another session's nice-19 build still takes half a core from a benchmark.
# Needs root (writes /proc/PID/autogroup). See docs/benchmarks.md.
set -u
level=19
[ "${1:-}" = restore ] && level=0
mine=$(cut -d' ' -f1 /proc/$$/autogroup)
for f in /proc/[0-9]*/autogroup; do
  g=$(cut -d' ' -f1 "$f" 2>/dev/null) || continue
  [ "$g" != "$mine" ] && echo "$level" > "$f" 2>/dev/null
done
echo 0 > /proc/$$/autogroup
true
