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
"""A pytest plugin: what each test file collected and how its tests ended, as JSON.

``make series`` loads it into the pytest of a PR's commit (``-p forktool.series_outcomes``) and
reads the file named by ``$FORK_SERIES_OUTCOMES`` afterwards::

    {"collected": {file: items}, "errors": {file: message},
     "outcomes": {file: {"passed": n, "failed": n, ...}}, "failures": [[node id, message]]}

A plugin rather than pytest's output or JUnit XML: upstream's ``addopts`` (pymc-extras' ``-v``)
change how ``--collect-only`` prints, and JUnit XML does not record what was collected. Only
hooks, no import of pytest, so that the fork tool stays standard library.
"""

import json
import os

from collections import Counter, defaultdict
from typing import Any

__all__ = [
    "OUTCOMES",
    "pytest_collection_finish",
    "pytest_collectreport",
    "pytest_runtest_logreport",
    "pytest_sessionfinish",
    "summary",
]

OUTCOMES = "FORK_SERIES_OUTCOMES"

_collected: Counter[str] = Counter()
_errors: dict[str, str] = {}
_outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)
_failures: list[list[str]] = []


def summary(text: str) -> str:
    """What went wrong, in one line of a pytest report: the first of its last ``E`` lines.

    pytest marks the lines of an error with ``E``; a chained error is several such blocks, the
    last being the error raised, and an assertion's block explains its first line below it.
    """
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    doctest = _doctest_summary(lines)
    if doctest:
        return doctest
    block: list[str] = []
    for previous, line in zip(["", *lines], lines):
        if line.startswith("E "):
            block = [*(block if previous.startswith("E ") else []), line[1:].strip()]
    return block[0] if block else (lines[-1].strip() if lines else "(no message)")


def _doctest_summary(lines: list[str]) -> str:
    """``doctest line N: expected ..., got ...`` of a failed doctest's report; "" otherwise."""
    if not lines or not lines[-1].endswith(("DocTestFailure", "UnexpectedException")):
        return ""
    where = f"doctest line {lines[-1].rpartition(':')[0].rpartition(':')[2]}"

    def value(index: int, word: str) -> str:  # "Expected:\n    3" or "Expected nothing"
        rest = lines[index].strip().removeprefix(word).lstrip(":").strip()
        return rest or (lines[index + 1].strip() if index + 2 < len(lines) else "")

    starts: dict[str, int] = {}  # each line's first word, at its first line
    for number, line in enumerate(lines):
        starts.setdefault((line.replace(":", " ").split() or [""])[0], number)
    if "UNEXPECTED" in starts:
        return f"{where}: {value(starts['UNEXPECTED'], 'UNEXPECTED EXCEPTION')}"
    if "Expected" in starts and "Got" in starts:
        expected, got = value(starts["Expected"], "Expected"), value(starts["Got"], "Got")
        return f"{where}: expected {expected!r}, got {got!r}"
    return f"{where} failed"


def _file(nodeid: str) -> str:
    return nodeid.split("::")[0]


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _errors[_file(report.nodeid)] = summary(report.longreprtext)
    elif report.skipped and "::" not in report.nodeid and report.nodeid.endswith(".py"):
        # A module skipped as a whole (pytest.importorskip at its top).
        _outcomes[_file(report.nodeid)]["skipped"] += 1


def pytest_collection_finish(session: Any) -> None:
    _collected.update(_file(item.nodeid) for item in session.items)


def pytest_runtest_logreport(report: Any) -> None:
    outcomes = _outcomes[_file(report.nodeid)]
    if hasattr(report, "wasxfail"):
        if report.when == "call" or report.skipped:
            outcomes["xpassed" if report.passed else "xfailed"] += 1
        return
    if report.failed:
        outcomes["failed" if report.when == "call" else "error"] += 1
        _failures.append([report.nodeid, summary(report.longreprtext)])
    elif report.skipped:
        outcomes["skipped"] += 1
    elif report.when == "call":
        outcomes["passed"] += 1


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    path = os.environ.get(OUTCOMES)
    if not path:
        return
    with open(path, "w") as file:
        json.dump(
            {
                "collected": dict(_collected),
                "errors": _errors,
                "outcomes": {name: dict(counts) for name, counts in _outcomes.items()},
                "failures": _failures,
                "exit": int(exitstatus),
            },
            file,
        )
