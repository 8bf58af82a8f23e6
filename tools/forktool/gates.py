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
"""Upstream's gates on the assembled fork: ruff and mypy, as each project's CI would run them.

Each gate runs twice per distribution: on the pristine tree (the sdist as released) and on the
work tree (pristine + patches + our linked files). Both runs use upstream's configuration:
ruff runs from inside the tree, so that tree's ``pyproject.toml`` applies; mypy uses the
``[tool.mypy]`` table of *pristine* pymc's ``pyproject.toml`` for both packages, as PyMC's CI
(``scripts/run_mypy.py``) does for ``pymc``. Pristine pymc has type errors of its own; only
findings the fork adds fail the gates.
"""

import os
import subprocess

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from forktool import ForkError
from forktool.findings import (
    Finding,
    new_findings,
    parse_mypy,
    parse_ruff_check,
    parse_ruff_format_diff,
)
from forktool.layout import Distribution, Layout
from forktool.overlay import linked_paths
from forktool.pristine import ensure_pristine

__all__ = [
    "GATES",
    "GateResult",
    "GateRun",
    "gate_findings",
    "mypy_config",
    "print_report",
    "run_gates",
    "tool_versions",
]

GATES = ("ruff check", "ruff format", "mypy")
# The distribution whose mypy configuration every package is checked with.
_MYPY_CONFIG_FROM = "pymc"
_OUTPUT_TAIL = 3000


@dataclass(frozen=True)
class GateRun:
    """One gate on one tree."""

    gate: str
    dist: Distribution
    tree: Path
    side: str  # "pristine", "fork", or "series" (a commit of the PR series); names the cache
    # The environment mypy resolves imports in (its --python-executable); default .venv's.
    python: Path | None = None


@dataclass
class GateResult:
    """One gate of one distribution: the findings on both trees."""

    dist: str
    gate: str
    pristine: list[Finding]
    fork: list[Finding]

    @property
    def new(self) -> list[Finding]:
        return new_findings(self.pristine, self.fork)


def _run(command: list[str], tree: Path, ok: tuple[int, ...], what: str) -> str:
    result = subprocess.run(command, cwd=tree, capture_output=True, text=True)
    if result.returncode not in ok:
        output = (result.stdout + result.stderr).strip()[-_OUTPUT_TAIL:]
        raise ForkError(
            f"{what} in {tree} failed (exit {result.returncode}): {' '.join(command)}\n{output}"
        )
    return result.stdout


def _ruff_paths(tree: Path) -> list[str]:
    """``.`` and our linked folders: ruff checks linked files, but does not enter linked folders."""
    return [".", *(path for path in linked_paths(tree, "") if (tree / path).is_dir())]


def gate_findings(run: GateRun, layout: Layout, mypy_config: Path) -> list[Finding]:
    """The findings of ``run``'s gate on its tree, run with ``.venv``'s ruff or mypy."""
    python = str(layout.venv_python)
    what = f"{run.gate} on the {run.side} {run.dist.name} tree"
    # --force-exclude: upstream's excludes apply to the links we name explicitly too.
    if run.gate == "ruff check":
        command = [python, "-m", "ruff", "check", "--no-cache", "--force-exclude", "--exit-zero",
                   "--output-format=json", *_ruff_paths(run.tree)]  # fmt: skip
        return parse_ruff_check(_run(command, run.tree, (0,), what), run.tree)
    if run.gate == "ruff format":
        command = [python, "-m", "ruff", "format", "--diff", "--no-cache", "--force-exclude",
                   *_ruff_paths(run.tree)]  # fmt: skip
        return parse_ruff_format_diff(_run(command, run.tree, (0, 1), what), run.tree)
    cache = layout.cache_dir / "mypy" / run.dist.name / run.side
    command = [python, "-m", "mypy", "--config-file", str(mypy_config), "--cache-dir", str(cache),
               "--show-error-codes", "--no-error-summary", "--no-pretty", "--no-color-output",
               run.dist.package]  # fmt: skip
    if run.python is not None:
        command[-1:-1] = ["--python-executable", str(run.python)]
    return parse_mypy(_run(command, run.tree, (0, 1), what))


def tool_versions(layout: Layout) -> str:
    """``ruff x.y.z, mypy x.y.z`` as installed in ``.venv``: findings depend on them."""
    versions = []
    for tool in ("ruff", "mypy"):
        command = [str(layout.venv_python), "-m", tool, "--version"]
        output = _run(command, layout.root, (0,), f"asking {tool} its version").strip()
        versions.append(output.split(" (")[0])
    return ", ".join(versions)


def mypy_config(dists: list[Distribution]) -> Path:
    """The configuration mypy checks every package with: pristine pymc's ``pyproject.toml``."""
    by_name = {dist.name: dist for dist in dists}
    if _MYPY_CONFIG_FROM not in by_name:
        raise ForkError(f"the gates take mypy's configuration from {_MYPY_CONFIG_FROM}, not pinned")
    return ensure_pristine(by_name[_MYPY_CONFIG_FROM]) / "pyproject.toml"


def run_gates(layout: Layout, dists: list[Distribution]) -> list[GateResult]:
    """Run every gate on the pristine and the fork tree of each distribution.

    The work trees must be assembled (``make build``) and ruff and mypy installed in ``.venv``.
    """
    pristine = {dist.name: ensure_pristine(dist) for dist in dists}
    config = mypy_config(dists)
    runs = [
        GateRun(gate, dist, tree, side)
        for dist in dists
        for gate in GATES
        for side, tree in (("pristine", pristine[dist.name]), ("fork", dist.work_dir))
    ]
    # mypy dominates the time; its runs are independent processes.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        found = list(pool.map(lambda run: gate_findings(run, layout, config), runs))
    results: dict[tuple[str, str], GateResult] = {}
    for run, findings in zip(runs, found, strict=True):
        result = results.setdefault(
            (run.dist.name, run.gate), GateResult(run.dist.name, run.gate, [], [])
        )
        setattr(result, run.side, findings)
    return list(results.values())


def print_report(results: list[GateResult], dists: list[Distribution]) -> int:
    """Print findings per gate, pristine vs fork, then every new one; 1 if there are any."""
    versions = {dist.name: dist.version for dist in dists}
    print(f"\n{'gate':<28}{'pristine':>10}{'fork':>8}{'new':>6}")
    for result in results:
        label = f"{result.dist}: {result.gate}"
        print(f"{label:<28}{len(result.pristine):>10}{len(result.fork):>8}{len(result.new):>6}")
    new = [(result, finding) for result in results for finding in result.new]
    if not new:
        print("gates: the fork adds no finding to pristine upstream's")
        return 0
    print(f"\ngates: {len(new)} finding(s) in the fork that pristine upstream does not have:")
    for result, finding in new:
        tree = f".fork/src/{result.dist}"
        print(f"  {result.dist} {versions[result.dist]} {result.gate}: {tree}/{finding}")
    print(
        "Fix them in our files (pymc/, pymc_extras/, tests/...) or in the work tree and "
        "`make refresh`; findings are compared by file, code and message, not line."
    )
    return 1
