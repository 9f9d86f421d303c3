"""Markdown code blocks that run: each ```python block, and the ```text block right after
it holding what it prints. Used by the tests of docs/how-it-works.md and the README."""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


@dataclass(frozen=True)
class Block:
    code: str
    expected: str | None  # the ```text block right after it; None when there is none
    line: int  # where the code starts in the file, for messages


def python_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    fences = list(FENCE.finditer(text))
    blocks = []
    for fence, after in zip(fences, fences[1:] + [None]):
        if fence.group(1) != "python":
            continue
        follows = after is not None and after.group(1) == "text" and \
            not text[fence.end():after.start()].strip()
        blocks.append(Block(fence.group(2), after.group(2) if follows else None,
                            text.count("\n", 0, fence.start()) + 2))
    return blocks


def run(block: Block, namespace: dict, name: str) -> str:
    """Execute the block in `namespace` (shared by the blocks of one file); its stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.code, f"{name}, the block at line {block.line}", "exec"), namespace)
    return out.getvalue()


def same_output(actual: str, expected: str | None) -> bool:
    """Equal up to trailing spaces on each line and blank lines at the end."""
    def lines(text: str) -> list[str]:
        return [line.rstrip() for line in text.rstrip().splitlines()]
    return lines(actual) == lines(expected or "")
