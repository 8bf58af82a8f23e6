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
"""Each PR of a small series checked alone at its commit: gates, markers, imports, tests."""

import json
import os
import stat
import subprocess
import sys

from pathlib import Path

import pytest

from forktool.layout import Distribution, Layout
from forktool.patchset import diff_text
from forktool.sdist import sha256_of
from forktool.series import compose
from forktool.series_check import (
    _markers,
    check_distribution,
    pr_test_files,
    print_series_report,
)
from forktool.series_env import Stage
from forktool.series_outcomes import OUTCOMES, summary
from forktool.series_plan import load_plan
from forktool.series_repo import write_series

TOOLS = Path(__file__).resolve().parents[3] / "tools"

CORE = "def answer():\n    return 42  # LINT:E711\n"
# Upstream's test of core.py: one test fails on the release already, one the first PR breaks.
UPSTREAM_TEST = """\
from pymc import core


def test_answer():
    assert core.answer() == 42


def test_broken_on_the_release():
    assert core.answer() == 0


def test_no_feeds():
    assert not hasattr(core, "FEEDS")
"""
PLAN = """\
[[pymc.pr]]
id = "feeds"
title = "Feeds"
description = "docs/series/feeds.md"
files = ["pymc/feeds.py", "tests/pymc/test_feeds.py", "docs/upstream/pymc/pymc-1.0.dist-info/"]
patches = ["pymc/core.py"]

[[pymc.pr]]
id = "stream"
title = "Stream"
description = "docs/series/stream.md"
files = ["pymc/stream/", "tests/pymc/stream/"]
"""
OURS = {
    # A new module, and its test, which imports a module that arrives only in the next PR.
    "pymc/feeds.py": "from pymc.core import answer\n\n\ndef feed():\n    return answer()\n",
    "tests/pymc/test_feeds.py": (
        "from pymc.feeds import feed\nfrom pymc.stream import stream  # LINT:I001\n\n\n"
        "def test_feed():\n    assert feed() == stream() == 42\n"
    ),
    # The metadata the PR installs: an entry point naming the next PR's module.
    "docs/upstream/pymc/pymc-1.0.dist-info/METADATA": "Name: pymc\nVersion: 1.0\n",
    "docs/upstream/pymc/pymc-1.0.dist-info/entry_points.txt": (
        "[pymc.plugins]\nstream = pymc.stream:stream\n"
    ),
    "pymc/stream/__init__.py": (
        "def stream():\n    return 42\n\n\n# fork-only: begin\nOLD = stream\n# fork-only: end\n"
    ),
    "tests/pymc/stream/test_stream.py": (
        "from pymc.stream import stream\n\n\ndef test_stream():\n    assert stream() == 42\n\n\n"
        "def test_wrong():\n    assert stream() == 41\n"
    ),
    "docs/series/feeds.md": "Feeds.\n",
    "docs/series/stream.md": "Stream.\n",
    # The plugins the pymc suite loads (tests/upstream/), reduced to what pytest needs.
    "tests/upstream/pymc_test_fixtures.py": "",
    "tests/upstream/known_failures.py": (
        "def pytest_addoption(parser):\n    parser.addoption('--known-failures')\n"
    ),
}

# ruff and mypy as .venv runs them for the gates, reduced to comments that name a finding:
# `# LINT:<code>` for ruff check, `# TYPE:<code>` for mypy, `UNFORMATTED` for ruff format.
FAKE_TOOLS = """\
import json, os, pathlib, sys
args = sys.argv[1:]
with open(os.environ["FAKE_TOOLS_LOG"], "a") as log:
    log.write(json.dumps([os.getcwd(), *args]) + "\\n")
lines = [
    (str(path.relative_to(pathlib.Path.cwd())), number, line)
    for path in sorted(pathlib.Path.cwd().rglob("*.py")) if ".git" not in path.parts
    for number, line in enumerate(path.read_text().splitlines(), start=1)
]
if args[1:3] == ["ruff", "check"]:
    print(json.dumps([
        {"filename": os.path.abspath(name), "code": line.split("LINT:")[1].split()[0],
         "message": "lint", "location": {"row": number, "column": 1}}
        for name, number, line in lines if "LINT:" in line
    ]))
elif args[1:3] == ["ruff", "format"]:
    for name in sorted({name for name, _, line in lines if "UNFORMATTED" in line}):
        print(f"--- {name}\\n+++ {name}")
elif args[1] == "mypy":
    for name, number, line in lines:
        if "TYPE:" in line:
            print(f"{name}:{number}: error: typed  [{line.split('TYPE:')[1].split()[0]}]")
"""


def _write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


class _Stage(Stage):
    """The stage without a venv: the checkout goes on ``PYTHONPATH`` of this Python."""

    def environment(self):
        env = super().environment()
        env["PYTHONPATH"] = str(self.tree)
        return env

    def move(self, commit):
        subprocess.run(["git", "-C", str(self.tree), "checkout", "-q", "--force", commit],
                       check=True)  # fmt: skip
        subprocess.run(["git", "-C", str(self.tree), "clean", "-q", "-dfx"], check=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory, make_sdist):
    """A written two-PR series of a small pymc, a stage to check it in, and the fake tools."""
    root = tmp_path_factory.mktemp("repository")
    pristine = {
        "pyproject.toml": b'[project]\nname = "pymc"\nversion = "1.0"\n',
        "pymc/__init__.py": b"",
        "pymc/core.py": CORE.encode(),
        "tests/test_core.py": UPSTREAM_TEST.encode(),
    }
    probe = Distribution("pymc", "1.0", "", "pymc", root)
    make_sdist(probe.sdist_path, pristine)
    dist = Distribution("pymc", "1.0", sha256_of(probe.sdist_path), "pymc", root)
    patched = CORE + "\n\nFEEDS = True  # LINT:F401 TYPE:misc UNFORMATTED\n"
    _write(
        root,
        "patches/pymc/pymc/core.py.patch",
        diff_text("pymc/core.py", CORE.encode(), patched.encode()),
    )
    for relative, text in OURS.items():
        _write(root, relative, text)
    _write(root, "series.toml", PLAN)
    layout = Layout(root)
    composed = compose(dist, load_plan(layout.series_plan, [dist])["pymc"])
    assert composed.problems == []
    write_series(composed, layout.series_dir / "pymc")

    tools = layout.venv_python
    tools.parent.mkdir(parents=True)
    tools.write_text(f"#!{sys.executable}\n{FAKE_TOOLS}")
    tools.chmod(tools.stat().st_mode | stat.S_IXUSR)

    tree = root / "checkout"
    subprocess.run(
        ["git", "clone", "-q", str(layout.series_dir / "pymc/repo"), str(tree)], check=True
    )
    return layout, _Stage(dist, Path(sys.executable), tree)  # fmt: skip


def _check(series, *, run):
    layout, stage = series
    config = layout.root / "pyproject.toml"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKE_TOOLS_LOG", str(layout.root / f"tools-{run}.jsonl"))
        return check_distribution(
            layout, stage, ["feeds", "stream"], config, ["pymc"], run=run, say=lambda _: None
        )


@pytest.fixture(scope="module")
def quick(series):
    """The quick check of the series: each PR's tests collected, not run."""
    return _check(series, run=False)


def test_each_pr_is_checked_alone_at_its_commit(quick, capsys):
    feeds, stream = quick
    assert feeds.problems == [
        "ruff check: pymc/core.py:5: [F401] lint",
        "ruff check: tests/test_feeds.py:2: [I001] lint",
        "ruff format: pymc/core.py: [format] would be reformatted",
        "mypy: pymc/core.py:5: [misc] typed",
        "imports: entry point pymc.plugins stream = pymc.stream:stream: "
        "ModuleNotFoundError: No module named 'pymc.stream'",
        "collect tests/test_feeds.py: ModuleNotFoundError: No module named 'pymc.stream'",
    ]
    # The PR's own test, and upstream's test of the upstream file it changes.
    assert feeds.files.own == ("tests/test_feeds.py",)
    assert feeds.files.upstream == ("tests/test_core.py",)
    assert feeds.tests.collected == {"tests/test_core.py": 3}
    # What the first PR left is the first PR's: the second is told, not blamed line by line.
    assert stream.problems == [
        "ruff check: 2 finding(s) left by the PRs before it",
        "ruff format: 1 finding(s) left by the PRs before it",
        "mypy: 1 finding(s) left by the PRs before it",
    ]
    assert stream.tests.collected == {"tests/stream/test_stream.py": 2}
    assert (stream.lines.new, stream.lines.tests) == ((2, 0), (9, 0))

    assert print_series_report([feeds, stream], run=False) == 1
    out = capsys.readouterr().out
    # Source (feeds.py, the patch, the metadata), tests, the three gates, markers, imports.
    rows = " ".join(out.split())
    assert "1 feeds +12-0 +6-0 2 1 1 0 1 1/2 files, 3 tests FAIL 2 stream +2-0 +9-0" in rows
    assert "note: pymc 2 stream: no test file" not in out
    assert "\nFAIL pymc PR 1 feeds (" in out
    assert (
        "  - collect tests/test_feeds.py: ModuleNotFoundError: No module named 'pymc.stream'" in out
    )
    assert out.endswith("series: 2 of 2 PRs fail on their own: pymc 1 feeds, pymc 2 stream\n")


def test_the_gates_run_in_the_checkout_with_upstream_configuration(series, quick):
    layout, stage = series
    log = (layout.root / "tools-False.jsonl").read_text()
    calls = [json.loads(line) for line in log.splitlines()]
    # The release and each PR: ruff check, ruff format and mypy, in the checkout.
    assert len(calls) == 9 and {call[0] for call in calls} == {str(stage.tree)}
    mypy = [call for call in calls if call[2] == "mypy"]
    assert all(call[call.index("--python-executable") + 1] == sys.executable for call in mypy)
    assert {call[call.index("--cache-dir") + 1] for call in mypy} == {
        str(layout.root / ".fork/cache/mypy/pymc/series")
    }


def test_the_full_variant_runs_the_tests_and_names_each_failure(series, capsys):
    feeds, stream = _check(series, run=True)
    assert feeds.tests.outcomes == {"tests/test_core.py": {"passed": 1, "failed": 2}}
    # Upstream's test that fails before the PR too is a note; the one it breaks is its failure.
    assert feeds.tests.failed_before == ["tests/test_core.py::test_broken_on_the_release"]
    assert [problem for problem in feeds.problems if problem.startswith("test ")] == [
        "test tests/test_core.py::test_no_feeds: AssertionError: assert not True"
    ]
    print_series_report([feeds, stream], run=True)
    out = capsys.readouterr().out
    assert "1/2 files, 3 tests, 1 passed, 2 failed (1 of them before it too)  FAIL\n" in out
    assert (
        "note: pymc 1 feeds: tests/test_core.py::test_broken_on_the_release fails at the commit "
        "before it too: upstream's test, not its doing\n"
    ) in out
    assert stream.tests.outcomes == {"tests/stream/test_stream.py": {"passed": 1, "failed": 1}}
    assert stream.problems[-1] == "test tests/stream/test_stream.py::test_wrong: assert 42 == 41"


def test_a_fork_marker_in_a_commit_fails_its_pr(tmp_path):
    """A marker that reached a commit anyway (make check refuses to compose one)."""
    _write(tmp_path, "pymc/stream.py", "def stream():  # fork-only: old name\n    return 42\n")
    _write(tmp_path, "pymc/old.py", "# fork-only\n")
    stage = Stage(Distribution("pymc", "1.0", "", "pymc", tmp_path), Path(sys.executable), tmp_path)
    changes = {"pymc/stream.py": "A", "pymc/old.py": "D", "pymc/core.py": "M"}
    assert _markers(stage, changes) == ["pymc/stream.py:1: def stream():  # fork-only: old name"]


def test_test_files_are_the_prs_own_its_doctests_and_upstreams_mirrors():
    changed = {
        "pymc/stream/__init__.py": "A",
        "pymc/stream/batching.py": "A",
        "pymc/data.py": "M",
        "pymc/variational/inference.py": "M",
        "pymc/__init__.py": "M",
        "pymc/old.py": "D",
        "tests/stream/test_batching.py": "A",
        "tests/stream/epoch_checks.py": "A",
        "tests/test_data.py": "M",
        "docs/source/api/streaming.rst": "A",
    }
    tree = {"tests/test_data.py", "tests/test_pytensorf.py", "tests/stream/test_batching.py"}
    files = pr_test_files(changed, tree, "pymc", doctests=False)
    assert files.own == ("tests/stream/test_batching.py", "tests/test_data.py")
    assert files.upstream == ()  # its mirror is a test the PR changes: run once, as its own
    assert files.missing == ("tests/variational/test_inference.py",)
    assert files.doctests == ()
    with_doctests = pr_test_files(changed, tree, "pymc", doctests=True)
    assert with_doctests.doctests == (
        "pymc/__init__.py",
        "pymc/data.py",
        "pymc/stream/__init__.py",
        "pymc/stream/batching.py",
        "pymc/variational/inference.py",
    )
    unchanged_test = pr_test_files({"pymc/data.py": "M"}, tree, "pymc", doctests=False)
    assert unchanged_test.upstream == ("tests/test_data.py",)


def test_the_outcomes_plugin_reports_every_file(tmp_path):
    tests = {
        "test_ok.py": "import pytest\n\n\ndef test_a():\n    pass\n\n\n"
        "@pytest.mark.xfail(reason='known', strict=True)\ndef test_b():\n    assert False\n",
        "test_fails.py": "def test_c():\n    assert 1 == 2\n",
        "test_broken.py": "import not_a_module\n",
        "test_skipped.py": "import pytest\n\npytest.importorskip('not_a_module')\n",
    }
    for name, text in tests.items():
        _write(tmp_path, name, text)
    report = tmp_path / "outcomes.json"
    env = {**os.environ, "PYTHONPATH": str(TOOLS), OUTCOMES: str(report)}
    command = [sys.executable, "-m", "pytest", "-p", "forktool.series_outcomes", "-p",
               "no:cacheprovider", "--continue-on-collection-errors", *sorted(tests)]  # fmt: skip
    subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, check=False)
    data = json.loads(report.read_text())
    assert data["collected"] == {"test_fails.py": 1, "test_ok.py": 2}
    assert data["errors"] == {
        "test_broken.py": "ModuleNotFoundError: No module named 'not_a_module'"
    }
    assert data["outcomes"] == {
        "test_fails.py": {"failed": 1},
        "test_ok.py": {"passed": 1, "xfailed": 1},
        "test_skipped.py": {"skipped": 1},
    }
    assert data["failures"] == [["test_fails.py::test_c", "assert 1 == 2"]]


def test_a_failed_doctest_is_summed_up_by_what_it_expected_and_got():
    report = "170     >>> trainer.fit(10)\nExpected nothing\nGot:\n    y\n\n/t/training.py:170: DocTestFailure\n"  # fmt: skip
    assert summary(report) == "doctest line 170: expected 'nothing', got 'y'"
    report = "012 >>> f()\nExpected:\n    3\nGot:\n    4\n\n/t/a.py:12: DocTestFailure\n"
    assert summary(report) == "doctest line 12: expected '3', got '4'"
    report = "013 >>> g()\nUNEXPECTED EXCEPTION: ValueError('bad')\nTraceback:\n/t/a.py:13: UnexpectedException\n"  # fmt: skip
    assert summary(report) == "doctest line 13: ValueError('bad')"


def test_a_failure_is_summed_up_by_its_last_error_line():
    text = "def test():\n>       f()\nE   ValueError: one\n\nduring:\nE   KeyError: 'two'\nfile.py:3: KeyError\n"  # fmt: skip
    assert summary(text) == "KeyError: 'two'"
    assert summary("only a line\n") == "only a line"
