#!/usr/bin/env python3
"""Print the module dependency graph of a Rust crate and fail on an import loop.

Usage:
    python3 scripts/module-deps.py crates/client/src          # top-level edges
    python3 scripts/module-deps.py --full crates/server/src   # also submodule edges

What counts as a dependency of module M on module N (comments and string literals are
ignored, so intra-doc links such as [`crate::Client`] do not count):

- `use` declarations, with grouped trees expanded (`use crate::{a, b::{c, d as e}};`),
  whose path starts with `crate::`, `super::`, `self::` or a child module's name;
- paths in code: `crate::n::…`, `super::…` (any number of `super::`) and `child::…`;
- a path naming an item of the crate root (`crate::Client`) resolves through the root's
  `pub use` re-exports to the module that defines the item; an item defined in the root
  file itself is a dependency on the root, shown as `crate`.

Levels: a file `src/a.rs` or `src/a/mod.rs` is module `a`; a file in a submodule folder
(`src/a/b.rs`) belongs to module `a::b`. The cycle check is on TOP-LEVEL modules: every
submodule counts as its top-level parent (edges inside one top-level module are dropped),
and `crate` (lib.rs, or main.rs when there is no lib.rs) is a module like the others, so
a file using an item defined in lib.rs while lib.rs uses that file is a loop. `--full`
also prints the edges between full module paths (both levels); those are informational.
Inline `mod x { … }` blocks (e.g. `mod tests`) belong to their file's module, with
`super::` resolved from inside the block. `src/bin/` (separate crates) is skipped.

Exit status: 0 when the top-level graph is acyclic (the layers are printed, lowest
first), 1 with every loop printed when it is not, 2 on bad usage.
"""

import os
import re
import sys
from collections import defaultdict

TOKEN = re.compile(
    r"""
    (?P<mod>\bmod\s+(?P<modname>[A-Za-z_]\w*)\s*\{)
  | (?P<use>\buse\s+(?P<tree>[^;]+);)
  | (?P<open>\{)
  | (?P<close>\})
  | (?P<path>(?<![\w:])(?P<segs>(?:[A-Za-z_]\w*\s*::\s*)+[A-Za-z_*]\w*))
    """,
    re.VERBOSE,
)


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments, string/char literals (keeping newlines for line numbers)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'":
            # char literal ('a', '\n', '\u{1F600}') vs lifetime ('a)
            m = re.match(r"'(\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list:
    """`crate::{a, b::{c, d as e}}` -> [['crate','a'], ['crate','b','c'], ['crate','b','d']]."""
    tree = re.sub(r"\s+as\s+[A-Za-z_]\w*", "", tree)  # `x as y` names x
    tree = re.sub(r"\s+", "", tree)

    def parse(s, prefix):
        paths = []
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0:
                head = part[:brace].rstrip(":")
                segs = [x for x in head.split("::") if x] if head else []
                paths.extend(parse(part[brace + 1 : part.rfind("}")], prefix + segs))
            else:
                segs = [x for x in part.split("::") if x]
                if segs and segs[-1] == "self":
                    segs = segs[:-1]
                paths.append(prefix + segs)
        return paths

    return parse(tree, [])


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path (tuple) -> file path
        for root, dirs, files in os.walk(src):
            rel = os.path.relpath(root, src)
            parts = [] if rel == "." else rel.split(os.sep)
            if parts[:1] == ["bin"]:
                dirs[:] = []
                continue
            for f in sorted(files):
                if not f.endswith(".rs"):
                    continue
                stem = f[:-3]
                if not parts and stem in ("lib", "main"):
                    continue
                mod = tuple(parts) if stem == "mod" else tuple(parts + [stem])
                self.files[mod] = os.path.join(root, f)
        lib = os.path.join(src, "lib.rs")
        main = os.path.join(src, "main.rs")
        root_file = lib if os.path.exists(lib) else main
        if os.path.exists(root_file):
            self.files[()] = root_file
        self.modules = set(self.files)
        self.reexports = {}  # item name -> defining module path (from the root's pub uses)
        self.edges = defaultdict(set)  # (from, to) -> {"file:line"}

    def children(self, mod):
        return {m[-1] for m in self.modules if len(m) == len(mod) + 1 and m[: len(mod)] == mod}

    def resolve(self, cur, segs):
        """Module a path refers to (longest known module prefix), or None if external."""
        segs = [s for s in segs if s]
        if not segs:
            return None
        if segs[0] == "crate":
            base, rest = (), segs[1:]
        elif segs[0] == "super":
            base, rest = cur, segs
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        elif segs[0] == "self":
            base, rest = cur, segs[1:]
        elif segs[0] in self.children(cur):
            base, rest = cur, segs
        else:
            return None
        mod = base
        for s in rest:
            if mod + (s,) in self.modules:
                mod = mod + (s,)
            else:
                if mod == () and s in self.reexports:
                    return self.reexports[s]
                break
        return mod

    def scan(self, mod):
        path = self.files[mod]
        text = strip_comments_and_strings(open(path, encoding="utf-8").read())
        stack = []  # (inline module name, brace depth at its opening)
        depth = 0
        for m in TOKEN.finditer(text):
            cur = mod + tuple(name for name, _ in stack)
            line = text.count("\n", 0, m.start()) + 1
            where = f"{os.path.relpath(path)}:{line}"
            if m.group("mod"):
                depth += 1
                stack.append((m.group("modname"), depth))
            elif m.group("open"):
                depth += 1
            elif m.group("close"):
                if stack and stack[-1][1] == depth:
                    stack.pop()
                depth -= 1
            elif m.group("use"):
                for segs in expand_use_tree(m.group("tree")):
                    self.add(cur, segs, where)
            elif m.group("path"):
                segs = re.sub(r"\s+", "", m.group("segs")).split("::")
                self.add(cur, segs, where)

    def collect_reexports(self):
        if () not in self.files:
            return
        text = strip_comments_and_strings(open(self.files[()], encoding="utf-8").read())
        for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", text):
            for segs in expand_use_tree(m.group(1)):
                if len(segs) < 2:
                    continue
                target = self.resolve((), segs[:-1])
                if target:
                    self.reexports[segs[-1]] = target

    def add(self, cur, segs, where):
        target = self.resolve(cur, segs)
        if target is None:
            return
        src_mod = cur
        while src_mod not in self.modules:  # inline module -> its file's module
            src_mod = src_mod[:-1]
        if target != src_mod:
            self.edges[(src_mod, target)].add(where)

    def run(self):
        self.collect_reexports()
        for mod in sorted(self.files):
            self.scan(mod)


def name(mod):
    return "::".join(mod) if mod else "crate"


def sccs(nodes, adj):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def a_cycle(comp, adj):
    """One cycle through the first node of a strongly connected component."""
    comp = set(comp)
    start = min(comp)
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(adj[v]):
                if w == start:
                    path = [v]
                    while prev[path[-1]] is not None:
                        path.append(prev[path[-1]])
                    return list(reversed(path)) + [start]
                if w in comp and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def main(argv):
    full = "--full" in argv
    args = [a for a in argv if a != "--full"]
    if len(args) != 1 or not os.path.isdir(args[0]):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    crate = Crate(args[0])
    crate.run()

    if full:
        print("# edges between modules (full paths)")
        for (a, b), wheres in sorted(crate.edges.items()):
            print(f"{name(a)} -> {name(b)}    ({sorted(wheres)[0]}{', …' if len(wheres) > 1 else ''})")
        print()

    top = defaultdict(set)
    where_top = defaultdict(set)
    nodes = {m[:1] for m in crate.modules}
    for (a, b), wheres in crate.edges.items():
        ta, tb = a[:1], b[:1]
        if ta != tb:
            top[ta].add(tb)
            where_top[(ta, tb)] |= wheres
    print("# edges between top-level modules (a submodule counts as its top-level parent)")
    for a in sorted(nodes):
        for b in sorted(top[a]):
            print(f"{name(a)} -> {name(b)}    ({sorted(where_top[(a, b)])[0]})")

    loops = [c for c in sccs(nodes, top) if len(c) > 1]
    if loops:
        print()
        for comp in loops:
            cyc = a_cycle(comp, top)
            print("CYCLE: " + " -> ".join(name(m) for m in cyc))
            for a, b in zip(cyc, cyc[1:]):
                print(f"    {name(a)} -> {name(b)} at {', '.join(sorted(where_top[(a, b)])[:3])}")
            print(f"    (strongly connected: {', '.join(sorted(name(m) for m in comp))})")
        return 1

    # layers: a module's layer is 1 + the highest layer it depends on
    layer = {}

    def depth(v):
        if v not in layer:
            layer[v] = 0
            layer[v] = 1 + max((depth(w) for w in top[v]), default=-1)
        return layer[v]

    for v in nodes:
        depth(v)
    print()
    print("# acyclic; layers, lowest first")
    for k in range(max(layer.values(), default=-1) + 1):
        print(f"{k}: " + ", ".join(sorted(name(v) for v in nodes if layer[v] == k)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
