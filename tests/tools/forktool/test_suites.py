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
from forktool.suites import SUITES, _counts


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
