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
"""The PR series: series.toml read, composed on the pristine sdist, checked, written out."""

import subprocess

import pytest

from forktool import ForkError
from forktool.budget import budget_report, measure
from forktool.layout import Distribution
from forktool.patchset import diff_text
from forktool.sdist import sha256_of
from forktool.series import compose
from forktool.series_plan import Selection, _selection, load_plan
from forktool.series_repo import write_series

LONG = "".join(f"line {i}\n" for i in range(1, 41))
# Three edits far enough apart to be three hunks: 1 at the top, 2 in the middle, 3 at the end.
LONG_EDITED = (
    LONG.replace("line 2\n", "line 2\nimport streaming\n")
    .replace("line 20\n", "line 20 (changed)\n")
    .replace("line 39\n", "line 39\nstreaming.hook()\n")
)
PLAN = """\
[[pymc.pr]]
id = "streaming"
title = "Streaming: the hook"
description = "docs/series/pymc/01-streaming.md"
files = ["pymc/streaming/", "tests/pymc/streaming/"]
patches = ["pymc/long.py#1,3"]

[[pymc.pr]]
id = "docs"
title = "Docs: the streaming page"
description = "docs/series/pymc/02-docs.md"
files = ["docs/upstream/pymc/docs/streaming.rst"]
patches = ["pymc/long.py#2"]

[pymc.fork-only]
reason = "The fork's version."
patches = ["pyproject.toml"]
"""


def _write(root, relative, text):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def dist(tmp_path, make_sdist):
    """A pinned pymc with a long module, two patches, files of ours and a series plan."""
    files = {
        "pyproject.toml": b'[project]\nname = "pymc"\nversion = "1.0"\n',
        "pymc/__init__.py": b"",
        "pymc/long.py": LONG.encode(),
        "tests/test_long.py": b"def test_long():\n    pass\n",
    }
    probe = Distribution("pymc", "1.0", "", "pymc", tmp_path)
    make_sdist(probe.sdist_path, files)
    dist = Distribution("pymc", "1.0", sha256_of(probe.sdist_path), "pymc", tmp_path)
    _write(
        tmp_path,
        "patches/pymc/pymc/long.py.patch",
        diff_text("pymc/long.py", LONG.encode(), LONG_EDITED.encode()),
    )
    pyproject = files["pyproject.toml"]
    _write(
        tmp_path,
        "patches/pymc/pyproject.toml.patch",
        diff_text("pyproject.toml", pyproject, pyproject.replace(b'"1.0"', b'"1.0+fork"')),
    )
    _write(tmp_path, "pymc/streaming/__init__.py", "def hook():\n    pass\n")
    _write(tmp_path, "tests/pymc/streaming/test_hook.py", "def test_hook():\n    pass\n")
    _write(tmp_path, "docs/upstream/pymc/docs/streaming.rst", "Streaming\n=========\n")
    _write(
        tmp_path,
        "docs/series/pymc/01-streaming.md",
        "# The hook\n\nWhy: data larger than memory.\n",
    )
    _write(tmp_path, "docs/series/pymc/02-docs.md", "The page.\n")
    _write(tmp_path, "series.toml", PLAN)
    return dist  # fmt: skip


def _plan(dist, text=None):
    if text is not None:
        (dist.root / "series.toml").write_text(text)
    return load_plan(dist.root / "series.toml", [dist])["pymc"]


def test_hunk_selections_are_read():
    assert _selection("pymc/a.py", "") == Selection("pymc/a.py", None)
    assert _selection("pymc/a.py#1,3", "") == Selection("pymc/a.py", (1, 3))
    assert _selection("pymc/a.py#2-4,7", "").hunks == (2, 3, 4, 7)
    with pytest.raises(ForkError, match=r"write them like 'pymc/a\.py#1,3'"):
        _selection("pymc/a.py#one", "")


@pytest.mark.parametrize(
    "text, message",
    [
        ('[[pymc.pr]]\nid = "x"\ntitle = "X"\ndescription = "d.md"\nfile = ["a"]\n', r"unknown key\(s\) \['file'\]"),
        ('[[pymc.pr]]\nid = "No Spaces"\ntitle = "X"\ndescription = "d.md"\nfiles = ["a"]\n', "lower-case letters"),
        ('[[pymc.pr]]\nid = "x"\ndescription = "d.md"\nfiles = ["a"]\n', r"`title` must be a non-empty string"),
        ('[[pymc.pr]]\nid = "x"\ntitle = "X"\ndescription = "d.md"\n', "a PR needs `files` or `patches`"),
        ('[pymc.fork-only]\npatches = ["pyproject.toml"]\n', "say in `reason` why"),
        ('[[scipy.pr]]\nid = "x"\n', r"tables \['scipy'\]; the pinned distributions are \['pymc'\]"),
        ('[[pymc.pr]]\nid = "x"\ntitle = "X"\ndescription = "d"\nfiles = ["a"]\n' * 2, r"PR id\(s\) \['x'\] used more than once"),
    ],
)  # fmt: skip
def test_a_malformed_plan_says_what_is_wrong(dist, text, message):
    with pytest.raises(ForkError, match=message):
        _plan(dist, text)


def test_a_missing_plan_is_named(dist):
    (dist.root / "series.toml").unlink()
    with pytest.raises(ForkError, match=r"series\.toml is missing: it lists the fork as a series"):
        _plan(dist)


def test_the_series_composes_pr_by_pr_to_the_assembled_tree(dist):
    series = compose(dist, _plan(dist))
    assert series.problems == []
    first, second, fork_only = series.steps
    long_after_first = first.tree["pymc/long.py"].decode()
    assert "import streaming" in long_after_first and "streaming.hook()" in long_after_first
    assert "(changed)" not in long_after_first
    assert first.tree["tests/streaming/test_hook.py"] == b"def test_hook():\n    pass\n"
    assert "docs/streaming.rst" not in first.tree
    assert second.tree["pymc/long.py"].decode() == LONG_EDITED
    assert second.changed == ["docs/streaming.rst", "pymc/long.py"]
    assert b"1.0+fork" in fork_only.tree["pyproject.toml"]
    assert [step.entry.id for step in series.prs] == ["streaming", "docs"]


def test_fork_only_lines_of_a_file_stay_out_of_its_pr_and_come_back_last(dist):
    hook = (
        "def hook():\n"
        "    pass\n"
        "# fork-only: begin\n"
        "def old_name():\n"
        "    return hook()\n"
        "# fork-only: end\n"
        "ALIAS = hook  # fork-only\n"
    )
    _write(dist.root, "pymc/streaming/__init__.py", hook)
    series = compose(dist, _plan(dist))
    assert series.problems == []
    first, _, fork_only = series.steps
    assert first.tree["pymc/streaming/__init__.py"] == b"def hook():\n    pass\n"
    assert fork_only.tree["pymc/streaming/__init__.py"] == hook.encode()
    assert "pymc/streaming/__init__.py" in fork_only.changed


def test_lines_tagged_for_a_later_pr_join_a_file_when_that_pr_applies(dist):
    hook = "def hook():\n    pass\nimport extra  # noqa: F401  # series: docs\n"
    _write(dist.root, "pymc/streaming/__init__.py", hook)
    first, second, fork_only = compose(dist, _plan(dist)).steps
    assert first.tree["pymc/streaming/__init__.py"] == b"def hook():\n    pass\n"
    # The PR gets the line without its tag; only the fork's own tree keeps the tag.
    assert second.tree["pymc/streaming/__init__.py"] == (
        b"def hook():\n    pass\nimport extra  # noqa: F401\n"
    )
    assert "pymc/streaming/__init__.py" in second.changed
    assert fork_only.tree["pymc/streaming/__init__.py"] == hook.encode()


TAGGED = """\
import os

EXPORTS = {
    "hook": "pymc.streaming",
    # series: docs: begin
    "page": "pymc.docs",
    # series: docs: end
}


# fork-only: begin
def old_name():
    return os.sep


# fork-only: end


def hook():
    pass
# series: docs: begin


def page():
    pass
# series: docs: end
"""


def test_a_pr_gets_no_tag_and_no_doubled_blank_line_where_lines_were_dropped(dist):
    _write(dist.root, "pymc/streaming/__init__.py", TAGGED)
    first, second, fork_only = compose(dist, _plan(dist)).steps
    assert first.tree["pymc/streaming/__init__.py"].decode() == (
        'import os\n\nEXPORTS = {\n    "hook": "pymc.streaming",\n}\n\n\ndef hook():\n    pass\n'
    )
    assert second.tree["pymc/streaming/__init__.py"].decode() == (
        'import os\n\nEXPORTS = {\n    "hook": "pymc.streaming",\n    "page": "pymc.docs",\n'
        "}\n\n\ndef hook():\n    pass\n\n\ndef page():\n    pass\n"
    )
    assert fork_only.tree["pymc/streaming/__init__.py"].decode() == TAGGED


@pytest.mark.parametrize(
    "line",
    [
        "ALIAS = hook  # fork-only: compatibility",  # not a tag: an edge on a line with code
        "# series: docs: start",  # neither begin nor end
        "x = 1  # kept for the fork-only path",
    ],
)
def test_a_fork_marker_that_is_no_tag_fails_the_series(dist, line):
    _write(dist.root, "pymc/streaming/__init__.py", f"def hook():\n    pass\n{line}\n")
    problems = compose(dist, _plan(dist)).problems
    assert problems == [
        "series.toml [pymc] PR 'streaming': pymc/streaming/__init__.py:3 keeps a fork marker in "
        f"the PR's file: {line!r}. Tags are `# series: <id>` or `# fork-only` at the end of a "
        "line, or `...: begin` / `...: end` on lines of their own (docs/fork.md); anything "
        "else would reach upstream."
    ]


def test_a_line_tagged_for_an_unknown_pr_is_reported(dist):
    _write(dist.root, "pymc/streaming/__init__.py", "import extra  # series: nope\n")
    [problem] = compose(dist, _plan(dist)).problems
    assert "pymc/streaming/__init__.py:1 is tagged for PR 'nope'" in problem


def test_every_file_and_hunk_must_be_in_exactly_one_entry(dist):
    plan = PLAN.replace('patches = ["pymc/long.py#2"]', 'patches = ["pymc/long.py#1"]')
    plan = plan.replace(
        'files = ["pymc/streaming/", "tests/pymc/streaming/"]', 'files = ["pymc/streaming/"]'
    )
    problems = compose(dist, _plan(dist, plan)).problems
    assert problems[0].startswith(
        "series.toml [pymc] PR 'docs': hunk(s) [1] of patches/pymc/pymc/long.py.patch do not "
        "apply to the tree the PRs before it leave (GNU patch --fuzz=0):\nReversed (or "
        "previously applied) patch detected!"
    )
    assert problems[1:] == [
        "tests/pymc/streaming/test_hook.py is in no PR of series.toml [pymc] and not fork-only: "
        "add it to the PR it belongs to.",
        "patches/pymc/pymc/long.py.patch hunk 1 (@@ -1,5 +1,6 @@) is listed more than once in "
        "series.toml: [\"PR 'streaming'\", \"PR 'docs'\"].",
        "patches/pymc/pymc/long.py.patch hunk 2 (@@ -17,7 +18,7 @@) is in no PR of series.toml "
        "[pymc] and not fork-only: add 'pymc/long.py' (or 'pymc/long.py#2') to the PR it "
        "belongs to.",
    ]


def test_entries_naming_nothing_real_are_reported(dist):
    plan = PLAN.replace('"pymc/long.py#2"', '"pymc/long.py#2", "pymc/core.py", "pymc/long.py#9"')
    plan = plan.replace(
        'files = ["docs/upstream', 'files = ["pymc/missing.py", "benchmarks/x.py", "docs/upstream'
    )
    problems = "\n".join(compose(dist, _plan(dist, plan)).problems)
    assert "files entry 'pymc/missing.py' matches no file in the repository" in problems
    assert "files entry 'benchmarks/x.py' is not a file of ours for pymc" in problems
    assert "there is no patches/pymc/pymc/core.py.patch" in problems
    assert "the patch has hunks 1-3, not [9]" in problems


def test_every_pr_needs_its_description(dist):
    (dist.root / "docs/series/pymc/02-docs.md").write_text("  \n")
    problems = compose(dist, _plan(dist)).problems
    assert problems == [
        "series.toml [pymc] PR 'docs': its description docs/series/pymc/02-docs.md is missing "
        "or empty; write what the PR does, why, and how it was tested."
    ]


def test_a_hunk_applied_elsewhere_than_in_its_patch_fails_the_series(tmp_path, make_sdist):
    # Two identical blocks; hunk 2 edits the second. Applied alone after hunk 1 added ten lines
    # above both, it names a line nearer the first block, and GNU patch edits that one.
    block = "".join(f"same {i}\n" for i in range(7))
    original = "top\n" + "".join(f"fill {i}\n" for i in range(10)) + block + "gap\n" + block
    edited = original.replace("top\n", "top\n" + "new\n" * 10, 1)
    cut = edited.rindex("same 3\n")
    edited = edited[:cut] + "SAME 3\n" + edited[cut + len("same 3\n") :]
    probe = Distribution("pymc", "1.0", "", "pymc", tmp_path)
    make_sdist(probe.sdist_path, {"pymc/x.py": original.encode()})
    dist = Distribution("pymc", "1.0", sha256_of(probe.sdist_path), "pymc", tmp_path)
    _write(
        tmp_path,
        "patches/pymc/pymc/x.py.patch",
        diff_text("pymc/x.py", original.encode(), edited.encode()),
    )
    _write(tmp_path, "d.md", "Why.\n")
    plan = (
        '[[pymc.pr]]\nid = "a"\ntitle = "A"\ndescription = "d.md"\npatches = ["pymc/x.py#1"]\n'
        '[[pymc.pr]]\nid = "b"\ntitle = "B"\ndescription = "d.md"\npatches = ["pymc/x.py#2"]\n'
    )  # fmt: skip
    problems = compose(dist, _plan(dist, plan)).problems
    assert problems == [
        "pymc:pymc/x.py: the series (all PRs + fork-only) gives other content than the "
        "assembled work tree; a hunk applied at another place than in its patch?"
    ]


def test_the_budget_counts_changed_lines_except_fork_only(dist):
    sizes = measure(dist, _plan(dist).fork_only)
    assert [(s.patch, s.added, s.removed, s.counted) for s in sizes] == [
        ("patches/pymc/pymc/long.py.patch", 3, 1, 4),
        ("patches/pymc/pyproject.toml.patch", 1, 1, 0),
    ]
    lines, within = budget_report(sizes, budget=4)
    assert within and lines[-1].startswith("size: 4 changed lines (added + removed) in patches/")
    assert "(fork-only, not counted)" in lines[2]
    lines, within = budget_report(sizes, budget=3)
    assert not within and "OVER the budget of 3" in lines[-1]


def _git(repo, *args):
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_series_is_written_as_reproducible_commits_and_patches(dist, tmp_path):
    series = compose(dist, _plan(dist))
    index = write_series(series, tmp_path / "out")
    repo = tmp_path / "out/repo"
    log = _git(repo, "log", "--format=%an <%ae> %ad|%s", "--date=iso", "streaming-series")
    assert log.splitlines() == [
        "PyMC streaming fork <streaming-fork@pymc.invalid> 2026-01-01 00:00:00 +0000|"
        "Docs: the streaming page",
        "PyMC streaming fork <streaming-fork@pymc.invalid> 2026-01-01 00:00:00 +0000|"
        "Streaming: the hook",
        "PyMC streaming fork <streaming-fork@pymc.invalid> 2026-01-01 00:00:00 +0000|"
        "pymc 1.0, the sdist as released",
    ]
    # The description is the body, markdown headings included.
    assert _git(repo, "log", "-1", "--format=%B", "HEAD~1") == (
        "Streaming: the hook\n\n# The hook\n\nWhy: data larger than memory.\n\n"
    )
    assert _git(repo, "show", "v1.0:pymc/long.py") == LONG
    assert _git(repo, "show", "HEAD:pymc/long.py") == LONG_EDITED
    assert "1.0+fork" not in _git(repo, "show", "HEAD:pyproject.toml")
    patches = sorted(path.name for path in (tmp_path / "out").glob("*.patch"))
    assert patches == ["0001-Streaming-the-hook.patch", "0002-Docs-the-streaming-page.patch"]

    text = index.read_text()
    assert "| 1 | Streaming: the hook (`streaming`) | [0001-Streaming-the-hook.patch]" in text
    assert "| +2 −0 | +2 −0 | +2 −0 | 0 |" in text  # upstream, new, tests, docs
    assert "| +1 −1 | 0 | 0 | +2 −0 |" in text
    assert "## Not in the series: fork-only\n\nThe fork's version.\n\n- `pyproject.toml`" in text

    head = _git(repo, "rev-parse", "HEAD")
    write_series(compose(dist, _plan(dist)), tmp_path / "out")
    assert _git(repo, "rev-parse", "HEAD") == head
