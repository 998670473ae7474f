#!/usr/bin/env python3
"""Rule coverage: which tests cite which rule of the spec.

Reads every rule of api.md (`- **R12.** ...`) and token.md (`T12. ...` at the start of
a line), scans the repository's test code for citations (`R12`, `T12`, ranges such as
`R84–R87`, and test names such as `r63_payload_...`), and writes docs/rules.md: one row
per rule with the test functions citing it (`file::fn`), the rules the spec gives as
guidance marked as such.

Test code is: every .rs file under crates/*/tests/, the `#[cfg(test)]` modules of
crates/*/src/**/*.rs, the conformance kits crates/*/src/conformance*.rs (test code that
lives in src so other crates' tests can run it), and sdk/js/test/** when present.

A citation counts for the function it appears in (its name, its doc comment, its
body). Citations in a file's `//!` header or outside every function do not count: a
header is a summary, not a test. Functions marked `#[test]` / `#[...::test]` are listed
as tests, other functions of test code as helpers (for example the matrix's row table).

Usage:
  scripts/rule-coverage.py            # writes docs/rules.md
  scripts/rule-coverage.py --check    # exits 1 if docs/rules.md is stale or a rule
                                      # that is not guidance has no test (lists them)
  --spec-dir DIR                      # where api.md and token.md are (default: the
                                      # nearest shared/spec above the repository, or
                                      # $SWITCHBOARD_SPEC_DIR)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "rules.md"

# Rules the spec states as guidance rather than behaviour a test can check, each with
# the spec's own words that make it so. The spec has no explicit label; these are the
# rules whose text says they are advice to apps, a benchmark target, or a baseline of
# another product that a stricter rule of this service replaces.
GUIDANCE = {
    "R37": "advice to apps (\"documented as valid for at most 24 hours; apps renew them\")",
    "R57": "Agora's baseline, replaced by this service's R58 (section 15, #15: "
    "\"v1 figures kept as reference rules\")",
    "R73": "\"a benchmark target, not a timed test\" (bench/, docs/benchmarks.md)",
}

API_RULE = re.compile(r"^- \*\*R(\d+)\.\*\*\s*(.*)$")
TOKEN_RULE = re.compile(r"^T(\d+)\.\s+(.*)$")
HEADING = re.compile(r"^(#{2,4})\s+(.*)$")
CITE = re.compile(r"(?<![A-Za-z0-9_])([RT])(\d{1,3})(?![A-Za-z0-9_])")
RANGE = re.compile(
    r"(?<![A-Za-z0-9_])([RT])(\d{1,3})\s*(?:–|—|-|\.\.|to)\s*\1?(\d{1,3})(?![A-Za-z0-9_])"
)
NAME_CITE = re.compile(r"(?:^|_)([rt])(\d{1,3})(?=_|$)")
FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")
TEST_ATTR = re.compile(r"#\[\s*(?:[A-Za-z_][A-Za-z0-9_]*::)*test\b")
IGNORE_ATTR = re.compile(r"#\[\s*ignore\b")
MAX_RANGE = 40


@dataclass
class Rule:
    id: str
    number: int
    source: str
    section: str
    text: str
    cited_by: set[str] = field(default_factory=set)

    @property
    def guidance(self) -> str | None:
        return GUIDANCE.get(self.id)

    @property
    def tested(self) -> bool:
        """Cited by a test that runs (an ignored test documents a known bug)."""
        return any(not t.endswith("(ignored)") for t in self.cited_by)


def find_spec_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("SWITCHBOARD_SPEC_DIR")
    if env:
        return Path(env)
    for parent in [REPO, *REPO.parents]:
        cand = parent / "shared" / "spec"
        if (cand / "api.md").is_file():
            return cand
    sys.exit("rule-coverage: cannot find shared/spec (use --spec-dir)")


def clean(text: str) -> str:
    """One line of rule text without its source tags and markdown emphasis."""
    text = re.sub(r"`\[[^`]*\]`", "", text)
    text = text.replace("**", "").replace("|", "\\|")
    text = re.sub(r"\s+", " ", text).strip()
    return text


def parse_api(path: Path) -> list[Rule]:
    rules, section = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        h = HEADING.match(line)
        if h:
            section = h.group(2).strip()
            continue
        m = API_RULE.match(line)
        if m:
            n = int(m.group(1))
            rules.append(Rule(f"R{n}", n, "api.md", section, clean(m.group(2))))
    return rules


def parse_token(path: Path) -> list[Rule]:
    rules, section, current = [], "", None
    for line in path.read_text(encoding="utf-8").splitlines():
        h = HEADING.match(line)
        if h:
            section = h.group(2).strip()
            current = None
            continue
        m = TOKEN_RULE.match(line)
        if m:
            n = int(m.group(1))
            current = Rule(f"T{n}", n, "token.md", section, m.group(2))
            rules.append(current)
        elif current is not None and line.strip() and not line.startswith(("|", "```", "-")):
            current.text += " " + line.strip()
        else:
            current = None
    for r in rules:
        r.text = clean(r.text)
    return rules


# ---------------------------------------------------------------------------------------
# Scanning test code
# ---------------------------------------------------------------------------------------


def code_only(src: str) -> str:
    """`src` with comments and string / char literals blanked (newlines kept), so that
    braces can be matched."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)", src[i:]).group(1))
            start = i + 1 + hashes + 1
            end = src.find('"' + "#" * hashes, start)
            end = n if end < 0 else end + 1 + hashes
            blank(i, end)
            i = end
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if i + 1 < n and src[i + 1] == "\\":
                j = src.find("'", i + 2)
                j = n if j < 0 else j
                blank(i, j + 1)
                i = j + 1
            elif i + 2 < n and src[i + 2] == "'":
                blank(i, i + 3)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


def matching_brace(code: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code)


def citations(text: str) -> set[str]:
    found = {f"{p}{int(n)}" for p, n in CITE.findall(text)}
    for p, a, b in RANGE.findall(text):
        a, b = int(a), int(b)
        if a < b <= a + MAX_RANGE:
            found.update(f"{p}{k}" for k in range(a, b + 1))
    return found


def cfg_test_spans(code: str) -> list[tuple[int, int]]:
    """Spans of `#[cfg(test)] mod x { ... }` blocks."""
    spans = []
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", code):
        open_at = m.end() - 1
        spans.append((m.start(), matching_brace(code, open_at) + 1))
    return spans


def rust_functions(src: str, code: str):
    """Yields (name, start, end, kind) for every fn with a body, kind being "test",
    "ignored" or "helper"; start includes its attributes and doc comments."""
    lines_start = [0]
    for k, ch in enumerate(src):
        if ch == "\n":
            lines_start.append(k + 1)
    for m in FN.finditer(code):
        body = None
        for k in range(m.end(), len(code)):
            if code[k] == "{":
                body = k
                break
            if code[k] == ";":
                break
        if body is None:
            continue
        end = matching_brace(code, body) + 1
        # Walk back over the attribute and doc-comment lines above the fn.
        line_no = src.count("\n", 0, m.start())

        def line(k: int) -> str:
            end_at = lines_start[k + 1] if k + 1 < len(lines_start) else len(src)
            return src[lines_start[k] : end_at].strip()

        start = lines_start[line_no]
        is_test = ignored = False
        k = line_no - 1
        while k >= 0:
            text = line(k)
            if text.startswith(("///", "#[")):
                is_test |= bool(TEST_ATTR.search(text))
                ignored |= bool(IGNORE_ATTR.search(text))
                start = lines_start[k]
                k -= 1
                continue
            if text.endswith("]") and not text.startswith("//"):
                # Maybe the last line of an attribute written over several lines.
                j = k - 1
                while j >= max(0, k - 8) and not line(j).startswith("#["):
                    if line(j).endswith(("{", "}", ";")) or not line(j):
                        j = -1
                        break
                    j -= 1
                if j >= 0 and line(j).startswith("#["):
                    is_test |= bool(TEST_ATTR.search(line(j)))
                    ignored |= bool(IGNORE_ATTR.search(line(j)))
                    start = lines_start[j]
                    k = j - 1
                    continue
            break
        yield m.group(1), start, end, ("ignored" if ignored else "test") if is_test else "helper"


def scan_rust(path: Path, rel: str, whole_file_is_test: bool, out: dict[str, set[str]]) -> None:
    src = path.read_text(encoding="utf-8", errors="replace")
    code = code_only(src)
    spans = None if whole_file_is_test else cfg_test_spans(code)
    if spans == []:
        return
    fns = list(rust_functions(src, code))
    for name, start, end, kind in fns:
        if spans is not None and not any(a <= start and end <= b for a, b in spans):
            continue
        # Only the innermost function claims a citation: blank nested functions out.
        text = src[start:end]
        for other, s2, e2, _ in fns:
            if start < s2 and e2 <= end:
                text = text[: s2 - start] + " " * (e2 - s2) + text[e2 - start:]
        cited = citations(text)
        cited.update(f"{p.upper()}{int(n)}" for p, n in NAME_CITE.findall(name))
        label = f"{rel}::{name}" + ("" if kind == "test" else f" ({kind})")
        for c in cited:
            out.setdefault(c, set()).add(label)


def scan_js(path: Path, rel: str, out: dict[str, set[str]]) -> None:
    src = path.read_text(encoding="utf-8", errors="replace")
    test_call = re.compile(r"""\b(?:test|it)\s*\(\s*(['"`])(.*?)\1""")
    current = None
    for line in src.splitlines():
        m = test_call.search(line)
        if m:
            current = m.group(2)
        if current is None:
            continue
        for c in citations(line):
            out.setdefault(c, set()).add(f"{rel}::{current}")


def scan_repo() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for crate in sorted((REPO / "crates").iterdir()):
        tests = crate / "tests"
        if tests.is_dir():
            for f in sorted(tests.rglob("*.rs")):
                scan_rust(f, f.relative_to(REPO).as_posix(), True, out)
        src = crate / "src"
        if src.is_dir():
            for f in sorted(src.rglob("*.rs")):
                kit = f.name.startswith("conformance")
                scan_rust(f, f.relative_to(REPO).as_posix(), kit, out)
    js = REPO / "sdk" / "js" / "test"
    if js.is_dir():
        for f in sorted(js.rglob("*")):
            if f.suffix in (".ts", ".js", ".mjs", ".mts") and "node_modules" not in f.parts:
                scan_js(f, f.relative_to(REPO).as_posix(), out)
    return out


# ---------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------


def short(text: str, n: int = 110) -> str:
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


def render(rules: list[Rule]) -> str:
    def order(label: str) -> tuple[int, str]:
        return (2 if label.endswith("(ignored)") else 1 if label.endswith("(helper)") else 0, label)

    untested = [r for r in rules if not r.cited_by and not r.guidance]
    bugs = [r for r in rules if r.cited_by and not r.tested and not r.guidance]
    guidance = [r for r in rules if r.guidance]
    lines = [
        "# Rules and the tests that check them",
        "",
        "Generated by `scripts/rule-coverage.py` from the rules of the spec (`api.md` R…,",
        "`token.md` T…) and the citations in the repository's test code; do not edit by",
        "hand. `scripts/rule-coverage.py --check` fails when this file is stale or when a",
        "rule that is not guidance has no test.",
        "",
        "A test cites a rule by naming it (`R63`, `T44`, a range such as `R84–R87`) in its",
        "name (`r63_…`), its doc comment or its body. Citations in a file's header do not",
        "count. Entries marked *(helper)* are functions of test code that are not test",
        "functions themselves (for example the bad-input matrix's row table,",
        "`crates/server/tests/matrix.rs::rows`, run by the `matrix_*` tests); entries marked",
        "*(ignored)* are tests written to the spec and marked `#[ignore]` because the code",
        "does not meet the rule yet (the reason is in the attribute).",
        "",
        f"- rules: {len(rules)} ({sum(r.source == 'api.md' for r in rules)} in api.md, "
        f"{sum(r.source == 'token.md' for r in rules)} in token.md)",
        f"- with at least one test that runs: {sum(r.tested for r in rules)}",
        f"- **with only ignored tests (known bugs): {len(bugs)}**"
        + (" — " + ", ".join(r.id for r in bugs) if bugs else ""),
        f"- guidance (no test expected): {len(guidance)} — "
        + ", ".join(r.id for r in guidance),
        f"- **without a test: {len(untested)}**"
        + (" — " + ", ".join(r.id for r in untested) if untested else ""),
        "",
    ]
    for source in ("api.md", "token.md"):
        lines += [f"## {source}", "", "| rule | section | rule text | tests |", "| --- | --- | --- | --- |"]
        for r in rules:
            if r.source != source:
                continue
            if r.guidance:
                tests = f"guidance: {r.guidance}"
                if r.cited_by:
                    tests += "; also cited by " + ", ".join(f"`{t}`" for t in sorted(r.cited_by, key=order))
            elif r.cited_by:
                tests = ", ".join(f"`{t}`" for t in sorted(r.cited_by, key=order))
                if not r.tested:
                    tests = "**only ignored tests (known bug)**: " + tests
            else:
                tests = "**no test**"
            lines.append(f"| {r.id} | {short(r.section, 40)} | {short(r.text)} | {tests} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if stale or a rule has no test")
    ap.add_argument("--spec-dir", help="directory holding api.md and token.md")
    args = ap.parse_args()
    spec = find_spec_dir(args.spec_dir)
    rules = parse_api(spec / "api.md") + parse_token(spec / "token.md")
    known = {r.id: r for r in rules}
    for rule_id, labels in scan_repo().items():
        if rule_id in known:
            known[rule_id].cited_by.update(labels)
    doc = render(rules)
    untested = [r for r in rules if not r.cited_by and not r.guidance]
    bugs = [r for r in rules if r.cited_by and not r.tested and not r.guidance]
    if not args.check:
        OUT.write_text(doc, encoding="utf-8")
        print(
            f"wrote {OUT.relative_to(REPO)}: {len(rules)} rules, {len(untested)} without a test, "
            f"{len(bugs)} with only ignored tests"
        )
        return 0
    failed = False
    current = OUT.read_text(encoding="utf-8") if OUT.is_file() else ""
    if current != doc:
        print(f"{OUT.relative_to(REPO)} is stale: run scripts/rule-coverage.py")
        failed = True
    if untested:
        print(f"{len(untested)} rules without a test:")
        for r in untested:
            print(f"  {r.id} ({r.source}, {r.section}): {short(r.text, 90)}")
        failed = True
    if bugs:
        print(f"{len(bugs)} rules whose only tests are ignored (known bugs):")
        for r in bugs:
            print(f"  {r.id}: " + ", ".join(sorted(r.cited_by)))
        failed = True
    if not failed:
        print(f"{len(rules)} rules, every one tested or guidance; docs/rules.md up to date")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
