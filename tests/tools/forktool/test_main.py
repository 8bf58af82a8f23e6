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
"""The `check` and `refresh` verbs, end to end, on a throwaway repository with fake sdists."""

import subprocess

from forktool.__main__ import main


def _git_add(layout, *paths):
    subprocess.run(["git", "add", *paths], cwd=layout.root, check=True)


def test_check_passes_on_a_clean_repository(repo, capsys):
    assert main(["--root", str(repo.root), "check"]) == 0
    assert "work trees and repository are clean" in capsys.readouterr().out


def test_check_fails_on_an_unrecorded_edit_until_refresh(repo, capsys):
    core = repo.root / ".fork/src/pymc/pymc/core.py"
    core.write_text(core.read_text().replace("41", "42"))

    assert main(["--root", str(repo.root), "check"]) == 1
    out = capsys.readouterr().out
    assert ".fork/src/pymc/pymc/core.py: edited, not recorded in patches/" in out

    assert main(["--root", str(repo.root), "refresh"]) == 0
    assert "added patches/pymc/pymc/core.py.patch" in capsys.readouterr().out
    # The new patch belongs in the series before check passes.
    assert main(["--root", str(repo.root), "check"]) == 1
    out = capsys.readouterr().out
    assert "patches/pymc/pymc/core.py.patch hunk 1 (@@ -1,2 +1,2 @@) is in no PR" in out

    (repo.root / "docs/series").mkdir(parents=True)
    (repo.root / "docs/series/answer.md").write_text("The answer is 42.\n")
    (repo.root / "series.toml").write_text(
        '[[pymc.pr]]\nid = "answer"\ntitle = "The answer"\n'
        'description = "docs/series/answer.md"\npatches = ["pymc/core.py"]\n'
    )
    assert main(["--root", str(repo.root), "check"]) == 0
    out = capsys.readouterr().out
    assert "patches/pymc/pymc/core.py.patch      1     1        2" in out
    assert "size: 2 changed lines" in out


def test_check_fails_on_a_committed_copy_of_an_upstream_file(repo, extras_files, capsys):
    copy = repo.root / "tests/vendored_init.py"
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(extras_files["pymc_extras/__init__.py"])
    _git_add(repo, "tests/vendored_init.py")

    assert main(["--root", str(repo.root), "check"]) == 1
    out = capsys.readouterr().out
    assert (
        "tests/vendored_init.py: committed copy of upstream pymc-extras:pymc_extras/__init__.py"
        in out
    )


def test_errors_are_reported_without_a_traceback(repo, capsys):
    (repo.root / "upstream.toml").write_text("[pymc]\nversion = '1.0'\n")
    assert main(["--root", str(repo.root), "check"]) == 2
    assert "[pymc] needs both `version` and `sha256`" in capsys.readouterr().err


def test_series_refuses_to_write_a_broken_series_and_writes_a_sound_one(repo, capsys):
    (repo.root / "pymc/streaming").mkdir(parents=True)
    (repo.root / "pymc/streaming/__init__.py").write_text("STREAMING = True\n")
    assert main(["--root", str(repo.root), "series", "--check", "none"]) == 1
    out = capsys.readouterr().out
    assert "series: pymc/streaming/__init__.py is in no PR of series.toml [pymc]" in out
    assert not (repo.root / "dist/series").exists()

    (repo.root / "streaming.md").write_text("Streaming.\n")
    (repo.root / "series.toml").write_text(
        '[[pymc.pr]]\nid = "streaming"\ntitle = "Streaming"\ndescription = "streaming.md"\n'
        'files = ["pymc/streaming"]\n'
    )
    assert main(["--root", str(repo.root), "series", "--check", "none"]) == 0
    assert "pymc: 1 PR(s) on 1.0 in dist/series/pymc/" in capsys.readouterr().out
    assert (repo.root / "dist/series/pymc/0001-Streaming.patch").exists()
    assert (repo.root / "dist/series/pymc-extras/SERIES.md").exists()
