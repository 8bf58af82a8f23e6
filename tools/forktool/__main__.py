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
"""The fork tool's command line: ``python -m forktool {build,refresh,check,gates,series,...}``."""

import argparse
import sys
import time

from pathlib import Path

from forktool import ForkError
from forktool.budget import BUDGET, budget_report, measure
from forktool.environment import ensure_venv, find_python, install, install_group
from forktool.gates import mypy_config, print_report, run_gates, tool_versions
from forktool.layout import Distribution, Layout
from forktool.repository import committed_copies
from forktool.sdist import ensure_sdist
from forktool.series import Series, compose
from forktool.series_check import check_distribution, print_series_report
from forktool.series_env import prepare_stage, shared_site
from forktool.series_plan import DistributionPlan, load_plan
from forktool.series_repo import write_series
from forktool.suites import SUITES, run_suites
from forktool.wheels import build_wheels, verify_wheels
from forktool.worktree import assemble, inspect, refresh


def _say(message: str) -> None:
    print(f"fork: {message}", flush=True)


def build(layout: Layout) -> None:
    """Download and verify, assemble the work trees, and install them into ``.venv``."""
    started = time.monotonic()
    python = ensure_venv(layout)
    dists = layout.distributions()
    for dist in dists:
        ensure_sdist(dist, python)
        if assemble(dist):
            _say(f"assembled .fork/src/{dist.name} ({dist.name} {dist.version} + patches)")
    if install(layout, dists):
        _say("installed the fork into .venv")
    _say(f"build is up to date ({time.monotonic() - started:.1f} s)")


def _fetch_sdists(layout: Layout) -> list[Distribution]:
    """The pinned distributions, their verified sdists downloaded if need be."""
    dists = layout.distributions()
    # Verifying needs the sdists, not the environment: any supported Python can fetch them.
    python = layout.venv_python if layout.venv_python.exists() else find_python()
    for dist in dists:
        ensure_sdist(dist, python)
    return dists


def _compose_series(
    layout: Layout, dists: list[Distribution]
) -> tuple[dict[str, DistributionPlan] | None, list[Series], list[str]]:
    """``series.toml`` read, each distribution's series composed, and everything wrong."""
    try:
        plans = load_plan(layout.series_plan, dists)
    except ForkError as err:
        return None, [], [str(err)]
    composed = [compose(dist, plans[dist.name]) for dist in dists]
    return plans, composed, [problem for series in composed for problem in series.problems]


def check(layout: Layout) -> int:
    """Patches apply; nothing unrecorded; no upstream copies; the series and size hold."""
    dists = _fetch_sdists(layout)
    problems = []
    for dist in dists:
        problems += inspect(dist).messages(dist)
    problems += committed_copies(layout, dists)
    plans, _, series_problems = _compose_series(layout, dists)
    problems += series_problems
    sizes = [
        size
        for dist in dists
        for size in measure(dist, plans[dist.name].fork_only if plans else None)
    ]
    lines, within = budget_report(sizes)
    print("\n".join(lines))
    if not within:
        problems.append(
            f"patches/ change more than {BUDGET} lines that count (see the table above): move "
            "logic out of upstream files into new modules, or split a PR off the fork."
        )
    for problem in problems:
        print(f"check: {problem}")
    if problems:
        print(f"check: {len(problems)} problem(s)")
        return 1
    print(
        "check: patches apply to the pinned sdists; work trees and repository are clean; "
        "series.toml covers the fork and every PR applies in order"
    )
    return 0


def series(layout: Layout, check: str = "full") -> int:
    """Write each distribution's PR series; then check every PR at its own commit.

    ``check`` is ``full`` (run each PR's tests), ``quick`` (collect them) or ``none``.
    """
    plans, composed, problems = _compose_series(layout, _fetch_sdists(layout))
    for problem in problems:
        print(f"series: {problem}")
    if problems or plans is None:
        print(f"series: {len(problems)} problem(s); nothing written")
        return 1
    for one in composed:
        index = write_series(one, layout.series_dir / one.dist.name)
        _say(
            f"{one.dist.name}: {len(one.prs)} PR(s) on {one.dist.version} in "
            f"{index.parent.relative_to(layout.root)}/ (index: SERIES.md)"
        )
    if check == "none":
        return 0
    build(layout)
    if install_group(layout, "lint"):
        _say("installed the lint dependency group (ruff, mypy) into .venv")
    started = time.monotonic()
    dists = [one.dist for one in composed]
    _say(f"series: {tool_versions(layout)}; each PR in .fork/series/<distribution>/")
    shared, config, reports = shared_site(layout, dists), mypy_config(dists), []
    for position, one in enumerate(composed):
        # A distribution's PRs build on the whole series of those pinned before it.
        needs = dists[:position]
        stage = prepare_stage(layout, one.dist, needs, shared)
        reports += check_distribution(
            layout,
            stage,
            [step.entry.id for step in one.prs],
            config,
            [dist.name for dist in (*needs, one.dist)],
            run=check == "full",
            say=_say,
        )
    code = print_series_report(reports, run=check == "full")
    _say(f"series: {check} check ran in {time.monotonic() - started:.0f} s")
    return code


def gates(layout: Layout) -> int:
    """Upstream's ruff and mypy on pristine and fork trees; fail on findings the fork adds."""
    build(layout)
    if install_group(layout, "lint"):
        _say("installed the lint dependency group (ruff, mypy) into .venv")
    started = time.monotonic()
    dists = layout.distributions()
    _say(f"gates: {tool_versions(layout)}; pristine = the sdists as released, fork = .fork/src/")
    code = print_report(run_gates(layout, dists), dists)
    _say(f"gates ran in {time.monotonic() - started:.0f} s")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forktool", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("build", help="download, verify, assemble and install into .venv")
    verbs.add_parser("refresh", help="regenerate patches/ from edits in the work trees")
    verbs.add_parser(
        "check",
        help="patches apply; no unrecorded edits; no upstream copies; series and size hold",
    )
    series_verb = verbs.add_parser(
        "series", help="write the fork as PR series into dist/series/ and check each PR alone"
    )
    series_verb.add_argument(
        "--check",
        choices=("full", "quick", "none"),
        default="full",
        help="at each PR's commit: lint, type-check and run its tests (full), only collect "
        "them (quick), or write the series without checking it (none)",
    )
    verbs.add_parser(
        "gates", help="upstream's ruff and mypy: the fork may add no finding to pristine's"
    )
    wheels = verbs.add_parser("wheels", help="build wheels into dist/ and test-install them")
    wheels.add_argument("--no-verify", action="store_true", help="skip the test install")
    test = verbs.add_parser("test", help="build if needed, then run the test suites")
    test.add_argument(
        "--suite",
        action="append",
        choices=[s.name for s in SUITES],
        help="run only this suite (repeatable); default: all",
    )
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="passed on to pytest")
    args = parser.parse_args(argv)
    layout = Layout(args.root.resolve())
    try:
        if args.verb == "build":
            build(layout)
        elif args.verb == "refresh":
            for dist in layout.distributions():
                for path, change in refresh(dist).items():
                    _say(f"{change} {path}")
            _say("patches/ matches the work trees")
        elif args.verb == "check":
            return check(layout)
        elif args.verb == "gates":
            return gates(layout)
        elif args.verb == "series":
            return series(layout, args.check)
        elif args.verb == "wheels":
            build(layout)
            built = build_wheels(layout, layout.distributions())
            for wheel in built:
                _say(f"built {wheel.relative_to(layout.root)}")
            if not args.no_verify:
                versions = verify_wheels(layout, built, find_python())
                _say(f"fresh venv + `pip install dist/*.whl` reports versions: {versions}")
        elif args.verb == "test":
            build(layout)
            extra = [a for a in args.pytest_args if a != "--"]
            return run_suites(layout, args.suite or [s.name for s in SUITES], extra)
    except ForkError as err:
        print(f"fork: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
