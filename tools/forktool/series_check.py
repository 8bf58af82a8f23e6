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
"""Every PR of the series through upstream's CI, alone, at its own commit.

For each commit of a distribution's series repository (``make series`` writes them), in order:

- **markers**: no file the PR adds or changes carries a fork marker (``# series:``,
  ``fork-only``);
- **ruff check**, **ruff format**, **mypy**, with upstream's configuration as ``make gates``
  runs them (``forktool.gates``), on the checkout of the commit: a finding the release itself
  lacks is new; each is reported at the PR that brought it;
- **imports**: every module of the package the PR adds or changes imports from the checkout
  (not from the assembled fork), and every entry point of the installed series loads;
- **tests**: the PR's own test files (those it adds or changes), the doctests of its modules
  where upstream's pytest collects doctests (pymc-extras), and upstream's tests of the upstream
  files it changes, found at the mirrored path (``pymc/a/b.py``: ``tests/a/test_b.py``) in the
  commit's tree. The quick variant collects them; the full one runs them. Upstream's test of a
  changed file that the sdist does not ship is listed as missing, not failed.

Each commit runs in the stage ``forktool.series_env`` prepares: a checkout and a venv in which
only the series, at that commit, is installed.
"""

import json
import os
import subprocess
import tempfile
import time

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from forktool import ForkError
from forktool.findings import Finding, new_findings
from forktool.gates import GATES, GateRun, gate_findings
from forktool.layout import Layout
from forktool.series import fork_markers
from forktool.series_env import Stage, git_lines
from forktool.series_outcomes import OUTCOMES
from forktool.series_repo import BRANCH, LineCounts, line_counts
from forktool.suites import SUITES, collects_doctests, plugin_path

__all__ = [
    "Outcomes",
    "PrReport",
    "PrTestFiles",
    "check_distribution",
    "pr_test_files",
    "print_series_report",
]

_PYTEST_CRASHED = (3, 4)  # internal error, usage error
_SHOWN_OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
_SHOWN_PROBLEMS = 25
# The folder holding this package: the outcomes plugin is imported from it.
_TOOLS = Path(__file__).resolve().parents[1]
_OUTPUT_TAIL = 2000

# Run in the PR's venv: import the modules named, and load every entry point of the
# distributions named; print what failed, as JSON. Imports must come from the checkout.
_PROBE = """\
import importlib, importlib.metadata as metadata, json, sys
modules, roots, dists = json.loads(sys.argv[1])
problems = []
for name in modules:
    try:
        module = importlib.import_module(name)
    except BaseException as error:
        problems.append(f"import {name}: {type(error).__name__}: {error}")
        continue
    where, tree = getattr(module, "__file__", None), roots[name.partition(".")[0]]
    if where and not where.startswith(tree + "/"):
        problems.append(f"import {name}: imported {where}, not from the series checkout {tree}")
for dist in dists:
    try:
        points = metadata.distribution(dist).entry_points
    except metadata.PackageNotFoundError:
        problems.append(f"{dist} is not installed in the series venv")
        continue
    for point in points:
        try:
            point.load()
        except BaseException as error:
            problems.append(
                f"entry point {point.group} {point.name} = {point.value}: "
                f"{type(error).__name__}: {error}"
            )
print(json.dumps(problems))
"""


@dataclass(frozen=True)
class PrTestFiles:
    """What pytest gets for one PR."""

    own: tuple[str, ...]  # test files the PR adds or changes
    doctests: tuple[str, ...]  # its modules, where upstream's pytest collects doctests
    upstream: tuple[str, ...]  # upstream's tests of the upstream files it changes
    missing: tuple[str, ...]  # ... of those, the ones the sdist does not ship

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.own, *self.upstream, *self.doctests)


def _is_test_file(path: PurePosixPath) -> bool:
    """Whether pytest collects ``path`` by default (``python_files``: ``test_*.py``, ``*_test.py``)."""
    return path.suffix == ".py" and (path.name.startswith("test_") or path.stem.endswith("_test"))


def pr_test_files(
    changed: dict[str, str], tree_files: set[str], package: str, doctests: bool
) -> PrTestFiles:
    """The test files of a PR, from its changes (``{path: git status letter}``) and its tree."""
    own: list[str] = []
    modules: list[str] = []
    upstream: list[str] = []
    missing: list[str] = []
    for name, status in sorted(changed.items()):
        if status == "D":
            continue
        path = PurePosixPath(name)
        if path.parts[0] == "tests" and _is_test_file(path):
            own.append(name)
        elif path.parts[0] == package and path.suffix == ".py":
            modules.append(name)
            if status != "A" and path.name != "__init__.py":
                mirror = PurePosixPath("tests", *path.parts[1:-1], f"test_{path.name}")
                (upstream if str(mirror) in tree_files else missing).append(str(mirror))
    upstream = [name for name in upstream if name not in own]
    return PrTestFiles(
        tuple(own), tuple(modules if doctests else ()), tuple(upstream), tuple(missing)
    )


@dataclass
class Outcomes:
    """What pytest collected and how the tests ended, per file (``forktool.series_outcomes``)."""

    collected: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    crash: str = ""  # pytest itself failed: its output's end
    # Upstream's tests that fail at the commit before the PR too: not the PR's doing.
    failed_before: list[str] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(counts.get(outcome, 0) for counts in self.outcomes.values())


@dataclass
class PrReport:
    """One PR at its commit: its size, and everything upstream's CI would say about it."""

    dist: str
    number: int
    id: str
    commit: str
    lines: LineCounts
    findings: dict[str, list[Finding]]  # gate -> new against the release, at this commit
    introduced: dict[str, list[Finding]]  # gate -> of those, new against the PR before
    markers: list[str]
    imports: list[str]
    files: PrTestFiles
    tests: Outcomes
    ran: bool  # the tests were run, not only collected

    @property
    def problems(self) -> list[str]:
        """Why the PR would fail upstream's CI on its own; empty if it would pass."""
        problems = [f"fork marker: {marker}" for marker in self.markers]
        for gate in GATES:
            found = self.findings[gate]
            inherited = len(found) - len(self.introduced[gate])
            problems += [f"{gate}: {finding}" for finding in self.introduced[gate]]
            if inherited:
                problems.append(f"{gate}: {inherited} finding(s) left by the PRs before it")
        problems += [f"imports: {problem}" for problem in self.imports]
        if self.tests.crash:
            problems.append(f"pytest did not finish: {self.tests.crash}")
        problems += [f"collect {name}: {error}" for name, error in self.tests.errors.items()]
        for name in self.files.own:
            if name not in self.tests.collected and name not in self.tests.errors:
                skipped = self.tests.outcomes.get(name, {}).get("skipped")
                if not skipped:
                    problems.append(f"collect {name}: no test collected")
        problems += [
            f"test {node}: {message}"
            for node, message in self.tests.failures
            if node not in self.tests.failed_before
        ]
        return problems


def _changes(repo: Path, before: str, after: str) -> dict[str, str]:
    """``{path: status}`` of the files ``after`` adds (A), modifies (M) or deletes (D)."""
    changes = {}
    for line in git_lines(repo, "diff", "--name-status", "--no-renames", before, after):
        status, _, path = line.partition("\t")
        changes[path] = status[0]
    return changes


def _module_name(path: str) -> str:
    parts = PurePosixPath(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


def _probe(stage: Stage, modules: list[str], dists: list[str]) -> list[str]:
    """Import ``modules`` and load the entry points of ``dists`` in the PR's venv.

    Every installed package is imported too, and each must come from its series tree.
    """
    roots = {package: str(tree) for package, tree in stage.roots.items()}
    argument = json.dumps([sorted({*roots, *modules}), roots, dists])
    # Run away from the checkout, so that the modules come through the installation.
    result = _run(
        [str(stage.python), "-c", _PROBE, argument], stage.python.parent, stage.environment()
    )
    if result.returncode != 0:
        return [f"the import probe failed: {(result.stdout + result.stderr)[-_OUTPUT_TAIL:]}"]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _pytest(stage: Stage, layout: Layout, files: tuple[str, ...], *, run: bool) -> Outcomes:
    """Collect (or run) ``files`` in the checkout with upstream's pytest configuration."""
    if not files:
        return Outcomes()
    suite = next(s for s in SUITES if s.distribution == stage.dist.name)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "outcomes.json"
        env = stage.environment()
        # The plugins of the upstream suites, and the fork tool's outcomes plugin.
        env["PYTHONPATH"] = plugin_path(
            layout, os.pathsep.join(filter(None, [str(_TOOLS), env.get("PYTHONPATH")]))
        )
        env[OUTCOMES] = str(report)
        command = [str(stage.python), "-m", "pytest", "-p", "no:cacheprovider"]
        command += ["-p", "forktool.series_outcomes", "--color=no", "-q"]
        for plugin in suite.plugins:
            command += ["-p", plugin]
        if "known_failures" in suite.plugins:
            command += ["--known-failures", suite.name]
        # Every file's collection is reported, also when another's fails.
        command += ["--continue-on-collection-errors", *(() if run else ["--collect-only"])]
        result = _run([*command, *files], stage.tree, env)
        if not report.exists() or result.returncode in _PYTEST_CRASHED:
            tail = (result.stdout + result.stderr).strip()[-_OUTPUT_TAIL:]
            return Outcomes(crash=f"exit {result.returncode}: {tail}")
        data = json.loads(report.read_text())
    return Outcomes(
        data["collected"],
        data["errors"],
        data["outcomes"],
        [(node, message) for node, message in data["failures"]],
    )


def _failing_before(
    stage: Stage, layout: Layout, before: str, tests: Outcomes, upstream: set[str]
) -> list[str]:
    """Upstream's failing tests (from files in ``upstream``) that fail at commit ``before`` too.

    Upstream's own tests of a file the PR changes may fail on the release already (pymc-extras'
    doctest of ``Trainer`` prints a progress bar it does not expect); the PR is answerable only
    for those it breaks. The suspects run again at the commit before the PR; a test that fails
    there, or cannot be collected there, is reported as a note and not as the PR's failure.
    """
    suspects = tuple(node for node, _ in tests.failures if node.split("::")[0] in upstream)
    if not suspects:
        return []
    stage.move(before)
    again = _pytest(stage, layout, suspects, run=True)
    failed = {node for node, _ in again.failures}
    return [
        node
        for node in suspects
        if again.crash or node in failed or node.split("::")[0] in again.errors
    ]


def _gates(stage: Stage, layout: Layout, mypy_config: Path) -> dict[str, list[Finding]]:
    """ruff, ruff format and mypy on the checkout, with upstream's configuration."""
    return {
        gate: gate_findings(
            GateRun(gate, stage.dist, stage.tree, "series", python=stage.python),
            layout,
            mypy_config,
        )
        for gate in GATES
    }


def _markers(stage: Stage, changes: dict[str, str]) -> list[str]:
    found = []
    for name, status in sorted(changes.items()):
        path = stage.tree / name
        if status != "D" and path.is_file():
            found += [f"{name}:{n}: {line}" for n, line in fork_markers(path.read_bytes())]
    return found


def _modules(changes: dict[str, str], package: str) -> list[str]:
    """Every module of the package that a PR adds or changes, by import name."""
    return sorted(
        _module_name(name)
        for name, status in changes.items()
        if status != "D" and name.startswith(f"{package}/") and name.endswith(".py")
    )


def check_distribution(
    layout: Layout,
    stage: Stage,
    pr_ids: list[str],
    mypy_config: Path,
    installed: list[str],
    *,
    run: bool,
    say: Callable[[str], None] = print,
) -> list[PrReport]:
    """Check every PR of ``stage.dist``'s series at its commit (module docstring).

    ``pr_ids`` are the PRs of ``series.toml`` in order, one per commit of the series
    repository; ``installed`` the distributions installed in the stage's venv, whose entry
    points must load at every commit.
    """
    dist = stage.dist
    repo = layout.series_dir / dist.name / "repo"
    base = f"v{dist.version}"
    commits = git_lines(repo, "rev-list", "--reverse", f"{base}..{BRANCH}")
    if len(commits) != len(pr_ids):
        raise ForkError(
            f"{repo} has {len(commits)} commit(s) after {base}, but series.toml has "
            f"{len(pr_ids)} PR(s) for {dist.name}: run `make series` to write it anew."
        )
    release_files = set(git_lines(repo, "ls-tree", "-r", "--name-only", base))
    started = time.monotonic()
    stage.move(base)
    release = _gates(stage, layout, mypy_config)
    say(
        f"{dist.name} {base}: the release, baseline of the gates ({time.monotonic() - started:.0f} s)"
    )
    doctests = collects_doctests(stage.tree)
    reports = []
    before, previous = git_lines(repo, "rev-parse", base)[0], release
    for number, (commit, pr_id) in enumerate(zip(commits, pr_ids, strict=True), start=1):
        started = time.monotonic()
        stage.move(commit)
        changes = _changes(repo, before, commit)
        files = pr_test_files(
            changes, set(git_lines(stage.tree, "ls-files")), dist.package, doctests
        )
        # The PR's code (imports, then tests) beside the gates: two processes at a time.
        with ThreadPoolExecutor(max_workers=1) as pool:
            code = pool.submit(
                lambda: (
                    _probe(stage, _modules(changes, dist.package), installed),
                    _pytest(stage, layout, files.all, run=run),
                )
            )
            found = _gates(stage, layout, mypy_config)
            imports, tests = code.result()
        upstream = {*files.upstream, *(name for name in files.doctests if name in release_files)}
        tests.failed_before = _failing_before(stage, layout, before, tests, upstream)
        report = PrReport(
            dist=dist.name,
            number=number,
            id=pr_id,
            commit=commit,
            lines=line_counts(repo, before, commit, release_files),
            findings={gate: new_findings(release[gate], found[gate]) for gate in GATES},
            introduced={gate: new_findings(previous[gate], found[gate]) for gate in GATES},
            markers=_markers(stage, changes),
            imports=imports,
            files=files,
            tests=tests,
            ran=run,
        )
        reports.append(report)
        verdict = f"{len(report.problems)} problem(s)" if report.problems else "ok"
        say(
            f"{dist.name} {number}/{len(commits)} {pr_id}: {verdict} ({time.monotonic() - started:.0f} s)"
        )
        before, previous = commit, found
    return reports


def _cell(pair: tuple[int, int]) -> str:
    return "0" if pair == (0, 0) else f"+{pair[0]}-{pair[1]}"


def _test_cell(report: PrReport) -> str:
    tests = report.tests
    files = len(report.files.all)
    text = f"{files - len(tests.errors)}/{files} files, {sum(tests.collected.values())} tests"
    if report.ran:
        counts = [(tests.count(outcome), outcome) for outcome in _SHOWN_OUTCOMES]
        text += "".join(f", {count} {outcome}" for count, outcome in counts if count)
        if tests.failed_before:
            text += f" ({len(tests.failed_before)} of them before it too)"
    return text


def _notes(report: PrReport) -> list[str]:
    """What a reviewer should know about a PR's tests that is not a failure."""
    notes = []
    if not report.files.own:
        notes.append("no test file of its own")
    notes += [
        f"{node} fails at the commit before it too: upstream's test, not its doing"
        for node in report.tests.failed_before
    ]
    if report.files.missing:
        notes.append(
            "upstream's tests of the files it changes that the sdist does not ship: "
            + ", ".join(report.files.missing)
        )
    return notes


def print_series_report(reports: list[PrReport], *, run: bool) -> int:
    """Print one table per distribution and every reason a PR fails; 1 if any PR fails."""
    variant = "run" if run else "only collected (the quick variant; `make series` runs them)"
    print(f"\nseries: each PR alone at its own commit; its tests {variant}")
    header = f"{'PR':<36}{'source':>12}{'tests':>12}{'ruff':>6}{'format':>8}{'mypy':>6}"
    header += f"{'marks':>7}{'import':>8}  test files (own, upstream's, doctests): tests"
    dist = None
    for report in reports:
        if report.dist != dist:
            dist = report.dist
            print(f"\n{dist}\n{header}")
        (up_added, up_removed), (new_added, new_removed) = report.lines.upstream, report.lines.new
        source = (up_added + new_added, up_removed + new_removed)
        name = f"{report.number} {report.id}"
        name = name if len(name) < 35 else name[:32] + "..."
        row = f"{name:<36}{_cell(source):>12}{_cell(report.lines.tests):>12}"
        row += "".join(f"{len(report.findings[gate]):>{w}}" for gate, w in zip(GATES, (6, 8, 6)))
        row += f"{len(report.markers):>7}{len(report.imports):>8}  {_test_cell(report)}"
        print(row + ("  FAIL" if report.problems else "  ok"))
    print(
        "\n(source and tests: lines added-removed; ruff, format, mypy: findings the release lacks)"
    )
    for report in reports:
        for note in _notes(report):
            print(f"note: {report.dist} {report.number} {report.id}: {note}")
    failing = [report for report in reports if report.problems]
    if not failing:
        print(f"\nseries: all {len(reports)} PRs pass upstream's checks alone, each at its commit")
        return 0
    for report in failing:
        problems = report.problems
        print(f"\nFAIL {report.dist} PR {report.number} {report.id} ({report.commit[:10]}):")
        for problem in problems[:_SHOWN_PROBLEMS]:
            print(f"  - {problem}")
        if len(problems) > _SHOWN_PROBLEMS:
            print(f"  - ... and {len(problems) - _SHOWN_PROBLEMS} more")
    names = ", ".join(f"{r.dist} {r.number} {r.id}" for r in failing)
    print(f"\nseries: {len(failing)} of {len(reports)} PRs fail on their own: {names}")
    return 1
