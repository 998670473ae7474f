#!/usr/bin/env python3
"""Module headers against the tests: the rules a file's `//!` header names must be
rules its tests check.

For a test file (crates/*/tests/**.rs, and the conformance kits crates/*/src/conformance*.rs)
every rule its header names must be cited by a function of that same file (a test, or a
helper the tests run, as docs/rules.md counts them). For any other source file every rule
its header names must exist in the spec and be checked by some test (or be guidance).
Citations are read as scripts/rule-coverage.py reads them (`R12`, ranges `R84–R87`).

Usage:
  scripts/header-rules.py     # lists the headers that name untested rules; exit 1 if any
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def load_rule_coverage():
    spec = importlib.util.spec_from_file_location("rule_coverage", REPO / "scripts" / "rule-coverage.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rule_coverage"] = mod
    spec.loader.exec_module(mod)
    return mod


def header(src: str) -> str:
    """The text of the file's leading `//!` lines."""
    out = []
    for line in src.splitlines():
        s = line.strip()
        if s.startswith("//!"):
            out.append(s[3:])
        elif not s or s.startswith("#!"):
            continue
        else:
            break
    return "\n".join(out)


def order(rule: str) -> tuple[str, int]:
    return (rule[0], int(rule[1:]))


def main() -> int:
    rc = load_rule_coverage()
    spec_dir = rc.find_spec_dir(None)
    rules = {r.id for r in rc.parse_api(spec_dir / "api.md") + rc.parse_token(spec_dir / "token.md")}
    cited = rc.scan_repo()
    tested = {k for k, v in cited.items() if any(not t.endswith("(ignored)") for t in v)}
    tested |= set(rc.GUIDANCE)
    bad = 0
    for crate in sorted((REPO / "crates").iterdir()):
        for sub in ("tests", "src"):
            base = crate / sub
            if not base.is_dir():
                continue
            for f in sorted(base.rglob("*.rs")):
                rel = f.relative_to(REPO).as_posix()
                named = rc.citations(header(f.read_text(encoding="utf-8", errors="replace")))
                if not named:
                    continue
                unknown = sorted(named - rules, key=order)
                if sub == "tests" or f.name.startswith("conformance"):
                    own: dict[str, set[str]] = {}
                    rc.scan_rust(f, rel, True, own)
                    checked = {k for k, v in own.items() if any(not t.endswith("(ignored)") for t in v)}
                else:
                    checked = tested
                missing = sorted((named & rules) - checked, key=order)
                if missing or unknown:
                    bad += 1
                    what = []
                    if missing:
                        what.append("names rules its tests do not cite: " + " ".join(missing))
                    if unknown:
                        what.append("names rules the spec does not have: " + " ".join(unknown))
                    print(f"{rel}: " + "; ".join(what))
    if bad:
        print(f"{bad} module header(s) to correct", file=sys.stderr)
        return 1
    print("every module header names only rules its tests check")
    return 0


if __name__ == "__main__":
    sys.exit(main())
