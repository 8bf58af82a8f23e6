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
import subprocess
import sys

from forktool.suites import SUITES, _counts, suite_arguments
from forktool.worktree import assemble

SUITE = {suite.name: suite for suite in SUITES}


def test_junit_tally_separates_xfails_from_skips(pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_ok(): pass
        def test_bad(): assert False
        @pytest.mark.skip(reason="optional dependency")
        def test_skipped(): pass
        @pytest.mark.xfail(reason="known")
        def test_known(): assert False
        @pytest.fixture
        def broken(): raise RuntimeError
        def test_error(broken): pass
        """
    )
    report = pytester.path / "report.xml"
    pytester.runpytest(f"--junitxml={report}")
    counts = _counts(report)
    assert (counts.passed, counts.failed, counts.skipped, counts.xfailed) == (1, 2, 1, 1)


def test_a_missing_report_counts_nothing(tmp_path):
    counts = _counts(tmp_path / "never-written.xml")
    assert (counts.passed, counts.failed, counts.skipped, counts.xfailed) == (0, 0, 0, 0)


def test_upstream_suites_cover_the_areas_the_fork_patches():
    paths = {suite.name: suite.paths for suite in SUITES}
    assert paths["pymc"] == ("tests/test_data.py",)
    assert set(paths["pymc-extras"]) == {
        "tests/inference/pathfinder",
        "tests/inference/advi",
        "tests/inference/laplace_approx",
        "tests/inference/dadvi",
        "tests/variational",
    }


def _write(root, relative, text=""):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _overlay_tests(repo):
    """Tests of ours for both distributions, and modules of ours, linked by a build."""
    _write(repo.root, "tests/pymc/streaming/test_stream.py", "def test_stream():\n    pass\n")
    _write(repo.root, "pymc/streaming/__init__.py", '"""\n>>> 1 + 1\n2\n"""\n')
    _write(repo.root, "tests/pymc_extras/inference/test_refusals.py", "def test_no():\n    pass\n")
    # In a folder the pymc-extras suite runs anyway (upstream's tests/variational).
    _write(repo.root, "tests/pymc_extras/variational/test_ours.py", "def test_ours():\n    pass\n")
    _write(repo.root, "pymc_extras/streaming/__init__.py", '"""\n>>> 1 + 1\n2\n"""\n')
    _write(repo.root, "pymc_extras/inference/paths.py", '"""\n>>> 2 * 2\n4\n"""\n')
    _write(repo.root, "tests/test_tool.py", "def test_tool():\n    pass\n")
    for dist in repo.distributions():
        assemble(dist)


def test_upstream_suites_add_every_linked_test_of_ours(repo):
    _overlay_tests(repo)
    # pymc's configuration collects no doctests: only tests are added.
    assert suite_arguments(SUITE["pymc"], repo) == ["tests/test_data.py", "tests/streaming"]
    assert suite_arguments(SUITE["pymc-extras"], repo) == [
        *SUITE["pymc-extras"].paths,
        "tests/inference/test_refusals.py",
        "pymc_extras/inference/paths.py",
        "pymc_extras/streaming",
    ]


def test_our_suite_leaves_the_test_overlays_to_the_upstream_suites(repo):
    assert suite_arguments(SUITE["ours"], repo) == [
        "tests",
        "--ignore=tests/pymc",
        "--ignore=tests/pymc_extras",
    ]


def test_pytest_runs_linked_tests_and_doctests_under_upstreams_configuration(repo):
    _overlay_tests(repo)
    arguments = suite_arguments(SUITE["pymc-extras"], repo)
    ours = arguments[len(SUITE["pymc-extras"].paths) :]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rA", "-p", "no:cacheprovider", *ours],
        cwd=repo.root / ".fork/src/pymc-extras", capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    for nodeid in (
        "tests/inference/test_refusals.py::test_no",
        "pymc_extras/inference/paths.py::pymc_extras.inference.paths",
        "pymc_extras/streaming/__init__.py::pymc_extras.streaming",
    ):
        assert f"PASSED {nodeid}" in result.stdout
