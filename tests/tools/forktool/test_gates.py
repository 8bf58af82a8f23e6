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
"""Upstream gates: findings parsed, compared by file/code/message, reported per gate."""

import json
import re
import stat
import sys

import pytest

from forktool import ForkError
from forktool.findings import (
    Finding,
    new_findings,
    parse_mypy,
    parse_ruff_check,
    parse_ruff_format_diff,
)
from forktool.gates import print_report, run_gates
from forktool.pristine import ensure_pristine
from forktool.worktree import assemble

MYPY_OUTPUT = """\
pymc/data.py:12: error: Incompatible types in assignment (expression has type "None", variable has type "int")  [assignment]
pymc/data.py:12: note: Left operand is of type "int | None"
pymc/model/core.py:40:7: error: Name "x" already defined on line 30  [no-redef]
pymc/math.py:3: error: Old style message without a code
"""


def test_mypy_errors_are_findings_and_notes_are_not():
    findings = parse_mypy(MYPY_OUTPUT)
    assert [(f.file, f.line, f.code) for f in findings] == [
        ("pymc/data.py", 12, "assignment"),
        ("pymc/model/core.py", 40, "no-redef"),
        ("pymc/math.py", 3, ""),
    ]
    assert findings[1].message == 'Name "x" already defined on line 30'


def test_ruff_findings_are_relative_to_the_tree_and_counted_once(tmp_path):
    item = {
        "filename": str(tmp_path / "pymc/streaming/a.py"),
        "code": "I001",
        "message": "Import block is un-sorted or un-formatted",
        "location": {"row": 16, "column": 1},
    }
    findings = parse_ruff_check(json.dumps([item, item]), tmp_path)
    assert findings == [Finding("pymc/streaming/a.py", 16, "I001", item["message"])]


def test_ruff_format_diff_names_each_file_once(tmp_path):
    diff = "--- pymc/a.py\n+++ pymc/a.py\n@@ -1 +1 @@\n-x=1\n+x = 1\n\n--- b.py\n+++ b.py\n"
    assert [f.file for f in parse_ruff_format_diff(diff, tmp_path)] == ["pymc/a.py", "b.py"]


def test_only_findings_pristine_lacks_are_new_wherever_they_sit():
    pristine = [
        Finding("pymc/data.py", 12, "assignment", "Bad"),
        Finding("pymc/core.py", 40, "no-redef", 'Name "x" already defined on line 30'),
    ]
    fork = [
        Finding("pymc/data.py", 20, "assignment", "Bad"),  # moved down by a patch
        Finding("pymc/data.py", 31, "assignment", "Bad"),  # one more of the same
        Finding("pymc/core.py", 44, "no-redef", 'Name "x" already defined on line 34'),
        Finding("pymc/data.py", 25, "arg-type", "Bad"),  # new code
        Finding("pymc/streaming/a.py", 1, "assignment", "Bad"),  # new file
    ]
    assert new_findings(pristine, fork) == fork[3:]


def _fake_venv_python(layout):
    """A .venv python whose ruff and mypy report one old finding, plus new ones in the fork."""
    python = layout.venv_python
    python.parent.mkdir(parents=True)
    python.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        f"with open({str(layout.root / 'calls.jsonl')!r}, 'a') as log:\n"
        "    log.write(json.dumps([os.getcwd(), *args]) + '\\n')\n"
        "fork = '/.fork/src/' in os.getcwd()\n"
        "package = 'pymc_extras' if 'extras' in os.getcwd() else 'pymc'\n"
        "if args[-1] == '--version':\n"
        "    print(args[1] + ' 9.9.9')\n"
        "elif args[1:3] == ['ruff', 'check']:\n"
        "    old = {'filename': os.path.abspath(package + '/core.py'), 'code': 'E711',\n"
        "           'message': 'Comparison to None', 'location': {'row': 3, 'column': 1}}\n"
        "    new = dict(old, code='I001', message='Import block is un-sorted')\n"
        "    print(json.dumps([old, new] if fork else [old]))\n"
        "elif args[1:3] == ['ruff', 'format']:\n"
        "    if fork:\n"
        "        print('--- ' + package + '/core.py\\n+++ ' + package + '/core.py')\n"
        "    sys.exit(1 if fork else 0)\n"
        "elif args[1] == 'mypy':\n"
        "    print(package + '/core.py:%d: error: Old  [misc]' % (9 if fork else 5))\n"
        "    sys.exit(1)\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)


def _calls(layout):
    """What the fake python was asked: ``[cwd, *arguments]`` per call."""
    lines = (layout.root / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_gates_compare_the_fork_with_pristine_upstream(repo, capsys):
    dists = repo.distributions()
    _fake_venv_python(repo)
    results = run_gates(repo, dists)

    table = {(r.dist, r.gate): (len(r.pristine), len(r.fork), len(r.new)) for r in results}
    for dist in ("pymc", "pymc-extras"):
        assert table[dist, "ruff check"] == (1, 2, 1)
        assert table[dist, "ruff format"] == (0, 1, 1)
        assert table[dist, "mypy"] == (1, 1, 0)  # moved, not new

    assert print_report(results, dists) == 1
    out = capsys.readouterr().out
    assert re.search(r"\npymc-extras: mypy +1 +1 +0\n", out)
    assert "pymc 1.0 ruff check: .fork/src/pymc/pymc/core.py:3: [I001] Import block" in out

    mypy = [call for call in _calls(repo) if call[2] == "mypy"]
    pristine_config = str(repo.root / ".fork/pristine/pymc/pyproject.toml")
    # PyMC's mypy configuration for both packages; one cache per tree, inside .fork/.
    assert all(call[call.index("--config-file") + 1] == pristine_config for call in mypy)
    caches = {call[call.index("--cache-dir") + 1] for call in mypy}
    assert caches == {
        str(repo.root / f".fork/cache/mypy/{dist}/{side}")
        for dist in ("pymc", "pymc-extras")
        for side in ("pristine", "fork")
    }
    assert {(call[0], call[-1]) for call in mypy} == {
        (str(repo.root / ".fork/pristine/pymc"), "pymc"),
        (str(repo.root / ".fork/src/pymc"), "pymc"),
        (str(repo.root / ".fork/pristine/pymc-extras"), "pymc_extras"),
        (str(repo.root / ".fork/src/pymc-extras"), "pymc_extras"),
    }


def test_ruff_is_pointed_at_folders_we_link_into_the_fork(repo):
    (repo.root / "pymc/streaming").mkdir(parents=True)
    (repo.root / "pymc/streaming/__init__.py").write_text("")
    for dist in repo.distributions():
        assemble(dist)
    _fake_venv_python(repo)
    run_gates(repo, repo.distributions())
    fork = str(repo.root / ".fork/src/pymc")
    ruff = [call for call in _calls(repo) if call[2] == "ruff" and call[0] == fork]
    assert all(call[-2:] == [".", "pymc/streaming"] for call in ruff)


def test_a_tool_that_fails_is_reported_with_its_output(repo):
    python = repo.venv_python
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\necho 'No module named ruff' >&2\nexit 1\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(ForkError, match=r"(?s)ruff check on the pristine pymc tree .*failed.*ruff"):
        run_gates(repo, repo.distributions())


def test_the_pristine_tree_is_unpacked_once_per_sdist(fake_dist, fake_files):
    tree = ensure_pristine(fake_dist)
    assert (tree / "pymc/core.py").read_bytes() == fake_files["pymc/core.py"]
    (tree / "marker").write_text("")
    assert ensure_pristine(fake_dist) == tree
    assert (tree / "marker").exists()
