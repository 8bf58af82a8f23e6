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
"""Findings of linters and type checkers, read from their output and compared between trees.

A finding is identified by its file, error code and message, not by its line: a patch that
adds lines above an old finding moves it without making it new. Identical findings in one file
count once, so a second copy of an old problem is not new either.
"""

import itertools
import json
import re

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "new_findings", "parse_mypy", "parse_ruff_check", "parse_ruff_format_diff"]

# Lines of mypy's output like "pymc/data.py:12: error: Message  [code]"; notes are not findings.
_MYPY_ERROR = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:\d+:)? error: (?P<message>.*)$")
_MYPY_CODE = re.compile(r"^(?P<message>.*?)  \[(?P<code>[a-z0-9-]+)\]$")
# Messages that quote a line number ("defined on line 12") would move with the code.
_LINE_REFERENCE = re.compile(r"\bline \d+\b")


@dataclass(frozen=True)
class Finding:
    """One complaint of one tool about one place in a tree."""

    file: str
    line: int
    code: str
    message: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two findings the same one, wherever in the file they sit."""
        return self.file, self.code, _LINE_REFERENCE.sub("line N", self.message)

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}" if self.line else self.file
        return f"{place}: [{self.code}] {self.message}"


def parse_mypy(output: str) -> list[Finding]:
    """Findings of mypy's default text output (``file:line: error: message  [code]``)."""
    findings = []
    for line in output.splitlines():
        match = _MYPY_ERROR.match(line.rstrip())
        if not match:
            continue
        message, code = match["message"], ""
        coded = _MYPY_CODE.match(message)
        if coded:
            message, code = coded["message"], coded["code"]
        findings.append(Finding(match["file"], int(match["line"]), code, message))
    return findings


def _relative(filename: str, tree: Path) -> str:
    path = Path(filename)
    if path.is_absolute() and path.is_relative_to(tree):
        return path.relative_to(tree).as_posix()
    return path.as_posix()


def parse_ruff_check(output: str, tree: Path) -> list[Finding]:
    """Findings of ``ruff check --output-format=json`` run in ``tree``."""
    findings: dict[tuple, Finding] = {}
    for item in json.loads(output or "[]"):
        location = item.get("location") or {}
        finding = Finding(
            file=_relative(item["filename"], tree),
            line=int(location.get("row") or 0),
            code=item.get("code") or "syntax-error",
            message=item["message"],
        )
        # A file reached by two of the paths given is reported twice: keep one.
        findings.setdefault((finding, location.get("column")), finding)
    return list(findings.values())


def parse_ruff_format_diff(output: str, tree: Path) -> list[Finding]:
    """One finding per file in the output of ``ruff format --diff``: it would be reformatted."""
    lines = output.splitlines()
    return [
        Finding(_relative(after[4:].strip(), tree), 0, "format", "would be reformatted")
        for before, after in itertools.pairwise(lines)
        if before.startswith("--- ") and after.startswith("+++ ")
    ]


def new_findings(pristine: list[Finding], fork: list[Finding]) -> list[Finding]:
    """The fork's findings that pristine upstream does not have, by file, code and message."""
    known = {finding.key for finding in pristine}
    return [finding for finding in fork if finding.key not in known]
