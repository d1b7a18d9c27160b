"""The fenced examples of README.md and docs/*.md, as the doc-example tests read them (pure).

A fence's info string says what happens to the block (README, "Testing"):

- `` ```sh run `` (or `bash run`, `python run`, `sql run`): executed by
  tests/integration/docs/test_docs_examples.py against one live `vitals up --demo`;
- `` ```text output ``, right after a `run` block (blank lines between allowed): what the block
  prints. `...` stands for any text; whitespace is ignored, so JSON may be shown spaced;
- `` ```sh not-run: <reason> ``: deliberately not executed (deployment-only snippets, a
  placeholder program), the reason says why;
- any other language (`text`, `json`, ...) is illustration. A shell, Python or SQL block without
  `run` or `not-run: <reason>` fails tests/unit/test_docs_marked.py, as does a fence without a
  language.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CODE_LANGS", "DOCS", "REPO", "Block", "blocks", "matches"]

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
#: Languages whose blocks must say `run` or `not-run: <reason>`.
CODE_LANGS = frozenset({"sh", "bash", "shell", "console", "python", "py", "sql"})

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and mark, its text and expected output."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    mark: str  # "run", "not-run", "output", or "" (illustration)
    reason: str  # of a not-run block
    code: str
    expected: str | None = None  # the `text output` block that follows a run block

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def _parse(path: Path) -> list[Block]:
    lines = path.read_text("utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, info = len(m["indent"]), m["info"].strip()
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        code = "\n".join(line[indent:] for line in lines[i + 1:j]) + "\n"
        lang, _, rest = info.partition(" ")
        rest = rest.strip()
        mark, reason = "", ""
        if rest == "run":
            mark = "run"
        elif rest == "output":
            mark = "output"
        elif rest.startswith("not-run:"):
            mark, reason = "not-run", rest.removeprefix("not-run:").strip()
        elif rest:
            mark = "unknown: " + rest
        found.append(Block(path, i + 1, lang, mark, reason, code))
        i = j + 1
    return found


def blocks(paths: tuple[Path, ...] = DOCS) -> list[Block]:
    """Every fenced block of `paths`, in order; a `run` block carries the `text output` block
    that directly follows it as `expected`."""
    out: list[Block] = []
    for path in paths:
        parsed = _parse(path)
        for k, b in enumerate(parsed):
            nxt = parsed[k + 1] if k + 1 < len(parsed) else None
            if b.mark == "run" and nxt is not None and nxt.mark == "output":
                between = path.read_text("utf-8").splitlines()[
                    b.line + b.code.count("\n") + 1:nxt.line - 1]
                if all(not line.strip() for line in between):
                    b = Block(b.path, b.line, b.lang, b.mark, b.reason, b.code, nxt.code)
            out.append(b)
    return out


def matches(expected: str, actual: str) -> bool:
    """`actual` reads as `expected`: whitespace ignored, `...` stands for any text."""
    parts = ["".join(p.split()) for p in expected.split("...")]
    pattern = ".*?".join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, "".join(actual.split()), re.S) is not None
