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
"""Mark upstream tests that fail on pristine upstream too, with the reason, as strict xfails.

The list lives in ``known_failures.toml`` beside this file, one table per suite, each entry a
pytest node id and the reason it fails. A listed test
still runs: if it starts passing, strict xfail fails the run so the entry gets removed. Loaded
by ``make test`` with ``-p known_failures --known-failures <suite>``.
"""

import tomllib

from pathlib import Path

import pytest

__all__ = ["pytest_addoption", "pytest_collection_modifyitems", "pytest_terminal_summary"]

_LIST = Path(__file__).with_name("known_failures.toml")
# Node ids from the list that this run collected, for the summary.
_seen_key = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--known-failures",
        metavar="SUITE",
        help=f"mark the tests listed under [SUITE] in {_LIST.name} as known upstream failures",
    )
    parser.addoption(
        "--known-failures-file",
        metavar="PATH",
        default=str(_LIST),
        help="the TOML list of known failures (default: %(default)s)",
    )


def _known(config: pytest.Config) -> dict[str, str]:
    suite = config.getoption("--known-failures")
    if suite is None:
        return {}
    path = Path(config.getoption("--known-failures-file"))
    tables = tomllib.loads(path.read_text())
    if suite not in tables:
        raise pytest.UsageError(f"{path} has no [{suite}] table; it has {sorted(tables)}")
    return tables[suite]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    known = _known(config)
    for item in items:
        reason = known.get(item.nodeid)
        if reason is not None:
            marker = pytest.mark.xfail(reason=f"known upstream failure: {reason}", strict=True)
            item.add_marker(marker)
    config.stash[_seen_key] = {item.nodeid for item in items} & set(known)


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    known = _known(config)
    if not known:
        return
    seen = config.stash.get(_seen_key, set())
    terminalreporter.section("known upstream failures")
    for nodeid, reason in sorted(known.items()):
        state = "" if nodeid in seen else "  [not collected in this run]"
        terminalreporter.write_line(f"{nodeid}: {reason}{state}")
