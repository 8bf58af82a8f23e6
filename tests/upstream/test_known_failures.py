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
import tomllib

from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).resolve().parent


@pytest.fixture
def upstream_suite(pytester):
    pytester.syspathinsert(PLUGIN_DIR)
    pytester.makepyfile(
        test_upstream="""
        def test_needs_network():
            raise OSError("Name or service not known")

        def test_fixed_upstream():
            pass

        def test_ordinary():
            pass
        """
    )
    return pytester


def _run(pytester, entries):
    listing = pytester.path / "known.toml"
    lines = ["[demo]"] + [f'"test_upstream.py::{name}" = "{why}"' for name, why in entries.items()]
    listing.write_text("\n".join(lines) + "\n")
    return pytester.runpytest(
        "-p", "known_failures", "--known-failures", "demo",
        f"--known-failures-file={listing}", "-rxX",
    )  # fmt: skip


def test_a_listed_failure_is_an_xfail_that_shows_its_reason(upstream_suite):
    result = _run(upstream_suite, {"test_needs_network": "no network on CI"})
    result.assert_outcomes(passed=2, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*known upstream failures*",
            "test_upstream.py::test_needs_network: no network on CI",
            "*XFAIL*test_needs_network*known upstream failure: no network on CI*",
        ]
    )


def test_a_listed_test_that_passes_fails_the_run_so_the_entry_is_removed(upstream_suite):
    result = _run(upstream_suite, {"test_fixed_upstream": "was broken"})
    result.assert_outcomes(passed=1, failed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_an_entry_this_run_did_not_collect_is_pointed_out(upstream_suite):
    result = _run(upstream_suite, {"test_renamed": "gone"})
    result.stdout.fnmatch_lines(
        ["test_upstream.py::test_renamed: gone  [[]not collected in this run[]]"]
    )


def test_the_shipped_list_gives_a_reason_for_every_entry():
    tables = tomllib.loads((PLUGIN_DIR / "known_failures.toml").read_text())
    assert {"pymc", "pymc-extras"} <= set(tables)
    for suite, entries in tables.items():
        for nodeid, reason in entries.items():
            assert "::" in nodeid and len(reason) > 20, (suite, nodeid, reason)
