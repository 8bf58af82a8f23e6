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
"""The test suites of ``make test``: ours, and upstream's own for the areas we patch.

Our tests of each distribution live in its test overlay (``tests/pymc/``, ``tests/pymc_extras/``),
which ``make build`` links into the work tree's ``tests/``. They run in that distribution's
suite, from its work tree and under its pytest configuration, next to upstream's tests; the
``ours`` suite runs everything else in ``tests/``.
"""

import os
import subprocess
import time
import tomllib
import xml.etree.ElementTree as ET

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forktool import ForkError
from forktool.layout import Distribution, Layout
from forktool.overlay import linked_paths
from forktool.series_plan import load_plan

__all__ = ["SUITES", "Suite", "collects_doctests", "plugin_path", "run_suites", "suite_arguments"]

# pytest.ExitCode.NO_TESTS_COLLECTED (pytest is not importable from the host Python).
_PYTEST_NO_TESTS_COLLECTED = 5


@dataclass(frozen=True)
class Suite:
    """One pytest session: where it runs, on what, with which plugins.

    ``paths`` are upstream's own tests for an upstream suite; our overlaid tests are added to
    them from the work tree (see ``suite_arguments``), so a new test file needs no change here.
    """

    name: str
    distribution: str | None  # None: our own tests, run from the repository root
    paths: tuple[str, ...]
    plugins: tuple[str, ...] = ()

    def cwd(self, layout: Layout) -> Path:
        if self.distribution is None:
            return layout.root
        return layout.root / ".fork" / "src" / self.distribution


# Upstream suites run from the work tree, so each uses its own pytest configuration (pymc-extras
# turns warnings into errors). `known_failures` marks tests that fail on pristine upstream too.
SUITES = (
    Suite("ours", None, ("tests",)),
    Suite(
        "pymc",
        "pymc",
        ("tests/test_data.py",),
        plugins=("pymc_test_fixtures", "known_failures"),
    ),
    Suite(
        "pymc-extras",
        "pymc-extras",
        (
            "tests/inference/pathfinder",
            "tests/inference/advi",
            "tests/inference/laplace_approx",
            "tests/inference/dadvi",
            "tests/variational",
        ),
        plugins=("known_failures",),
    ),
)


def plugin_path(layout: Layout, current: str | None = None) -> str:
    """``PYTHONPATH`` for an upstream suite: the plugins in ``tests/upstream/``, then ``current``.

    Our tests import their helpers the way upstream's tests do (``from tests.streaming.…``),
    from the tree pytest runs in; only the plugins live outside the trees.
    """
    return os.pathsep.join([str(layout.root / "tests" / "upstream"), *filter(None, [current])])


def collects_doctests(tree: Path) -> bool:
    """Whether the pytest configuration of ``tree`` (its pyproject.toml) has --doctest-modules."""
    try:
        config = tomllib.loads((tree / "pyproject.toml").read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError):
        return False
    addopts = config.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("addopts", [])
    options = addopts.split() if isinstance(addopts, str) else addopts
    return "--doctest-modules" in options


def _fork_only_files(layout: Layout, dist: Distribution) -> set[str]:
    """The files of ours that ``series.toml`` keeps in the fork for ``dist`` (none if unreadable)."""
    try:
        plans = load_plan(layout.series_plan, list(layout.distributions()))
    except ForkError:
        return set()
    plan = plans.get(dist.name)
    return set(plan.fork_only.files) if plan is not None else set()


def suite_arguments(suite: Suite, layout: Layout) -> list[str]:
    """The paths (and ignores) pytest gets for ``suite``, derived from the repository and trees.

    An upstream suite runs upstream's ``paths`` plus every test of ours linked into its work
    tree's ``tests/``; when the distribution's pytest configuration collects doctests
    (pymc-extras' ``--doctest-modules``), also our modules linked into its package. The ``ours``
    suite leaves out the test overlays, which run in the upstream suites.
    """
    dists = {dist.name: dist for dist in layout.distributions()}
    if suite.distribution is None:
        ignores = [
            f"--ignore={dist.test_overlay_dir.relative_to(layout.root).as_posix()}"
            for dist in dists.values()
        ]
        return [*suite.paths, *ignores]
    dist: Distribution = dists[suite.distribution]
    ours = linked_paths(dist.work_dir, "tests")
    doctest_ignores: list[str] = []
    if collects_doctests(dist.work_dir):
        # Not the fork-only modules: the old paths of moved modules warn when imported, and
        # hold no doctest of their own. They may sit in a folder linked whole: ignored by path.
        modules = {
            path
            for path in _fork_only_files(layout, dist)
            if path.startswith(f"{dist.package}/") and path.endswith(".py")
        }
        ours += [path for path in linked_paths(dist.work_dir, dist.package) if path not in modules]
        doctest_ignores = [f"--ignore={path}" for path in sorted(modules)]
    # A test of ours inside a folder upstream's paths name already runs with that folder.
    upstream = [PurePosixPath(path) for path in suite.paths]
    extra = [
        path
        for path in ours
        if not any(PurePosixPath(path).is_relative_to(folder) for folder in upstream)
    ]
    return [*suite.paths, *extra, *doctest_ignores]


@dataclass
class _Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    xfailed: int = 0

    def __add__(self, other: "_Counts") -> "_Counts":
        return _Counts(
            self.passed + other.passed,
            self.failed + other.failed,
            self.skipped + other.skipped,
            self.xfailed + other.xfailed,
        )


@dataclass
class _Result:
    suite: Suite
    exit_code: int
    counts: _Counts
    seconds: float


def _counts(report: Path) -> _Counts:
    """Tally a JUnit XML report; xfails are the skips pytest tags ``pytest.xfail``."""
    counts = _Counts()
    if not report.exists():
        return counts
    for case in ET.parse(report).iter("testcase"):
        outcome = {child.tag: child for child in case}
        if "failure" in outcome or "error" in outcome:
            counts.failed += 1
        elif "skipped" in outcome:
            if outcome["skipped"].get("type") == "pytest.xfail":
                counts.xfailed += 1
            else:
                counts.skipped += 1
        else:
            counts.passed += 1
    return counts


def run_suites(layout: Layout, names: list[str], pytest_args: list[str]) -> int:
    """Run the named suites one after another; print a summary; return the worst exit code."""
    layout.reports_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = plugin_path(layout, env.get("PYTHONPATH"))
    results = []
    for suite in (s for s in SUITES if s.name in names):
        report = layout.reports_dir / f"{suite.name}.xml"
        report.unlink(missing_ok=True)
        arguments = suite_arguments(suite, layout)
        command = [str(layout.venv_python), "-m", "pytest", *arguments]
        for plugin in suite.plugins:
            command += ["-p", plugin]
        if "known_failures" in suite.plugins:
            command += ["--known-failures", suite.name]
        command += ["-p", "no:cacheprovider", f"--junitxml={report}", "-rfEsxX", *pytest_args]
        print(f"\n=== {suite.name}: {' '.join(arguments)} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run(command, cwd=suite.cwd(layout), env=env).returncode
        seconds = time.monotonic() - started
        # pytest exits 5 when it collects nothing: fine when `-k` leaves a suite empty, a
        # failure in a full run.
        if code == _PYTEST_NO_TESTS_COLLECTED and pytest_args:
            code = 0
        results.append(_Result(suite, code, _counts(report), seconds))

    print(
        f"\n{'suite':<14}{'passed':>8}{'failed':>8}{'skipped':>9}{'xfailed':>9}{'seconds':>9}  exit"
    )
    for result in results:
        counts = result.counts
        print(
            f"{result.suite.name:<14}{counts.passed:>8}{counts.failed:>8}{counts.skipped:>9}"
            f"{counts.xfailed:>9}{result.seconds:>9.0f}  {result.exit_code}"
        )
    total = sum((result.counts for result in results), _Counts())
    print(f"total: {total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    return max((result.exit_code for result in results), default=0)
