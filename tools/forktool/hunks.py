#   Copyright 2026 - present The PyMC Developers
#
#   Licensed under the Apache License, Version 2.0 (the "License");
#   you may not use this file except in compliance with the License.
#   You may obtain a copy of the License at
#
#       http://www.apache.org/licenses/LICENSE-2.0
#
#   Unless required by applicable law or agreed to in writing, software
#   distributed under the License is distributed on an "AS IS" BASIS,
#   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
#   See the License for the specific language governing permissions and
#   limitations under the License.
"""A patch file's hunks: parsed, counted, and written back out one selection at a time.

The series (``series.toml``) may split one file's patch between pull requests by hunk number:
hunk 1 is the first ``@@`` block of the file's patch. A hunk's body is read by the line counts
of its ``@@ -a,b +c,d @@`` header, so an added line that happens to start with ``+++`` or
``---`` is content, never a header.
"""

import re

from collections.abc import Iterable
from dataclasses import dataclass

from forktool import ForkError

__all__ = ["FileDiff", "Hunk", "parse_diff"]

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Hunk:
    """One ``@@`` block: its header line and body lines, each with its line ending."""

    header: str
    body: tuple[str, ...]

    @property
    def added(self) -> int:
        return sum(line.startswith("+") for line in self.body)

    @property
    def removed(self) -> int:
        return sum(line.startswith("-") for line in self.body)

    @property
    def location(self) -> str:
        """The header's line ranges, e.g. ``@@ -118,7 +118,13 @@``, to name the hunk."""
        return self.header.split(" @@")[0] + " @@"


@dataclass(frozen=True)
class FileDiff:
    """A unified diff of one file: explanation above it, ``---``/``+++`` headers, hunks."""

    explanation: str
    old_header: str
    new_header: str
    hunks: tuple[Hunk, ...]

    def render(self, selected: Iterable[int] | None = None) -> str:
        """The diff with only the hunks numbered ``selected`` (1-based; None: all)."""
        numbers = range(1, len(self.hunks) + 1) if selected is None else sorted(set(selected))
        parts = [self.old_header, self.new_header]
        for number in numbers:
            hunk = self.hunks[number - 1]
            parts += [hunk.header, *hunk.body]
        return "".join(parts)


def _count(match: re.Match, group: int) -> int:
    value = match.group(group)
    return 1 if value is None else int(value)


def parse_diff(text: str, name: str = "patch") -> FileDiff:
    """Parse a one-file unified diff; ``name`` identifies it in errors.

    Raises
    ------
    ForkError
        If the text holds no diff, or a hunk is shorter than its header says.
    """
    lines = text.splitlines(keepends=True)
    start = next(
        (
            i
            for i in range(len(lines) - 1)
            if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ ")
        ),
        None,
    )
    if start is None:
        raise ForkError(f"{name} holds no unified diff (no `---`/`+++` header lines).")
    hunks: list[Hunk] = []
    position = start + 2
    while position < len(lines):
        header = lines[position]
        match = _HUNK_HEADER.match(header)
        if not match:
            if not header.strip():  # blank lines after the last hunk
                position += 1
                continue
            raise ForkError(
                f"{name}: line {position + 1} should start a hunk (`@@ -a,b +c,d @@`), got "
                f"{header.rstrip()!r}. Regenerate the patch with `make refresh`."
            )
        old, new = _count(match, 2), _count(match, 4)
        body: list[str] = []
        position += 1
        while position < len(lines) and (old > 0 or new > 0 or _marker(lines, position)):
            line = lines[position]
            if line.startswith(" ") or line in ("\n", "\r\n"):
                old, new = old - 1, new - 1
            elif line.startswith("-"):
                old -= 1
            elif line.startswith("+"):
                new -= 1
            body.append(line)
            position += 1
        if old > 0 or new > 0:
            raise ForkError(
                f"{name}: hunk {len(hunks) + 1} ({match.group(0)}) ends early; regenerate it "
                "with `make refresh`."
            )
        hunks.append(Hunk(header, tuple(body)))
    return FileDiff("".join(lines[:start]), lines[start], lines[start + 1], tuple(hunks))


def _marker(lines: list[str], position: int) -> bool:
    r"""``\ No newline at end of file`` belongs to the line before it."""
    return position < len(lines) and lines[position].startswith("\\")
