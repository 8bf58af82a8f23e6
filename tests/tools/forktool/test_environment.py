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
import stat

import pytest

from forktool import ForkError
from forktool.environment import find_python


def _executable(path, body):
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _supported_python(path):
    """A stand-in for a Python 3.12-3.14: it passes the version probe by exiting 0.

    Not ``sys.executable``: these tests run on the host python3, which may be 3.11.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return _executable(path, "#!/bin/sh\nexit 0\n")


@pytest.fixture
def bin_dir(tmp_path, monkeypatch):
    """An empty PATH and pyenv root, to be filled by each test."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    monkeypatch.delenv("FORK_PYTHON", raising=False)
    return folder


def test_a_shim_that_exists_but_fails_is_skipped(bin_dir):
    # pyenv puts `python3.12` on PATH even where its global version is 3.11; it then exits 127.
    _executable(
        bin_dir / "python3.12", "#!/bin/sh\necho 'pyenv: python3.12: command not found'\nexit 127\n"
    )
    working = _supported_python(bin_dir / "python3.13")
    assert find_python() == working


def test_pyenv_versions_are_searched_after_path(bin_dir, tmp_path):
    python = _supported_python(tmp_path / "pyenv/versions/3.12.1/bin/python3")
    assert find_python() == python


def test_fork_python_wins_and_is_checked(bin_dir, tmp_path, monkeypatch):
    chosen = _supported_python(tmp_path / "elsewhere/python")
    monkeypatch.setenv("FORK_PYTHON", str(chosen))
    assert find_python() == chosen
    too_old = _executable(tmp_path / "python3.11", "#!/bin/sh\nexit 1\n")
    monkeypatch.setenv("FORK_PYTHON", str(too_old))
    with pytest.raises(
        ForkError, match=r"FORK_PYTHON=.*python3\.11 is not a working Python 3\.12-14"
    ):
        find_python()


def test_no_supported_python_says_how_to_get_one(bin_dir):
    with pytest.raises(ForkError, match=r"no Python 3\.12-3\.14 found .*set FORK_PYTHON"):
        find_python()
