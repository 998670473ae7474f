#!/usr/bin/env python3
"""Checks that the server's modules stand in layers (docs/architecture.md).

Usage: python3 scripts/check-layers.py   (from the repository root)

Reads the module graph that scripts/module-deps.py prints (--full: every module path)
for crates/server/src and fails when
- the graph between modules at any level has a loop;
- an edge goes up a layer: leaf `wire` < `node` < `session` < `features` < the top
  (`dispatch`, `connection`, `gateway` and `http`, the crate root);
- a feature depends on another feature (`features::a` -> `features::b`); only the
  features' list, `features` (features/mod.rs), names them all.
Then runs module-deps.py's own top-level loop check on every crate under crates/.
"""

import re
import subprocess
from pathlib import Path
import sys
from collections import defaultdict

RANK = {"wire": 0, "node": 1, "session": 2, "features": 3,
        "dispatch": 4, "connection": 5, "gateway": 6, "http": 6, "crate": 7}


def edges(src):
    out = subprocess.run([sys.executable, "scripts/module-deps.py", "--full", src],
                         capture_output=True, text=True).stdout
    full = out.split("# edges between modules (full paths)", 1)[-1]
    for line in full.splitlines():
        m = re.match(r"^(\S+) -> (\S+)\s", line)
        if m:
            yield m.group(1), m.group(2)


def cycles(graph):
    seen, stack, found = set(), [], []

    def visit(n, on_path):
        if n in on_path:
            found.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        on_path.add(n)
        stack.append(n)
        for m in graph[n]:
            visit(m, on_path)
        stack.pop()
        on_path.discard(n)

    for n in list(graph):
        visit(n, set())
    return found


def main():
    problems = []
    graph = defaultdict(set)
    for a, b in edges("crates/server/src"):
        graph[a].add(b)
        ta, tb = a.split("::")[0], b.split("::")[0]
        if ta in RANK and tb in RANK and RANK[tb] > RANK[ta]:
            problems.append(f"up a layer: {a} -> {b}")
        pa, pb = a.split("::"), b.split("::")
        if (len(pa) > 1 and len(pb) > 1 and pa[0] == pb[0] == "features"
                and pa[1] != pb[1]):
            problems.append(f"feature on feature: {a} -> {b}")
    for c in cycles(graph):
        problems.append("loop: " + " -> ".join(c))
    crates = sorted(str(p) for p in Path("crates").glob("*/src"))
    for crate in crates:
        r = subprocess.run([sys.executable, "scripts/module-deps.py", crate],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{crate}: module loop\n{r.stdout}")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print("layers hold: the server at every level; no crate has a module loop")


if __name__ == "__main__":
    main()
