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
import sys

import pytest

from forktool import ForkError
from forktool.sdist import ensure_sdist, pristine_files


def _fake_pip(tmp_path, make_sdist, files):
    """An executable standing in for `python -m pip download`: it 'downloads' ``files``."""
    served = tmp_path / "served.tar.gz"
    make_sdist(served, files)
    script = tmp_path / "fake-python"
    script.write_text(
        f"#!{sys.executable}\n"
        "import shutil, sys\n"
        "dest = sys.argv[sys.argv.index('--dest') + 1]\n"
        f"shutil.copy({str(served)!r}, dest + '/pymc-1.0.tar.gz')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_a_cached_verified_sdist_is_used_without_downloading(fake_dist, fake_files, tmp_path):
    assert ensure_sdist(fake_dist, tmp_path / "no-such-python") == fake_dist.sdist_path
    assert pristine_files(fake_dist) == fake_files


def test_a_damaged_cache_is_downloaded_again(fake_dist, fake_files, make_sdist, tmp_path):
    fake_dist.sdist_path.write_bytes(b"truncated")
    python = _fake_pip(tmp_path, make_sdist, fake_files)
    ensure_sdist(fake_dist, python)
    assert pristine_files(fake_dist) == fake_files


def test_a_download_that_does_not_match_the_pin_is_refused(
    fake_dist, fake_files, make_sdist, tmp_path
):
    fake_dist.sdist_path.unlink()
    python = _fake_pip(tmp_path, make_sdist, {**fake_files, "pymc/core.py": b"import os\n"})
    with pytest.raises(
        ForkError,
        match=r"pymc-1\.0\.tar\.gz from the package index has sha256 \w+, but upstream\.toml pins",
    ):
        ensure_sdist(fake_dist, python)
    assert not fake_dist.sdist_path.exists()


def test_reading_an_unverified_sdist_is_refused(fake_dist):
    fake_dist.sdist_path.write_bytes(b"not the pinned file")
    with pytest.raises(ForkError, match="does not match its pin; run `make build` first"):
        pristine_files(fake_dist)


def test_a_failed_download_says_what_failed_and_what_to_do(fake_dist, tmp_path):
    fake_dist.sdist_path.unlink()
    python = tmp_path / "offline-python"
    python.write_text("#!/bin/sh\necho 'ERROR: No matching distribution found' >&2\nexit 1\n")
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(
        ForkError,
        match=r"(?s)downloading the pymc 1\.0 sdist failed \(exit 1\).*No matching distribution"
        r".*Check that the package index is reachable",
    ):
        ensure_sdist(fake_dist, python)
