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
import gzip
import io
import tarfile

import pytest

from forktool.layout import Distribution
from forktool.sdist import sha256_of

# A tiny stand-in for an upstream sdist: the tool treats it exactly like pymc's.
FAKE_SDIST = {
    "pyproject.toml": b'[project]\nname = "pymc"\nversion = "1.0"\n',
    "pymc/__init__.py": b"from pymc.core import answer\n",
    "pymc/core.py": b"def answer():\n    return 41\n",
    "pymc/variational/__init__.py": b"",
    "pymc/variational/opvi.py": b"STEPS = 10\n",
    "pymc.egg-info/SOURCES.txt": b"pymc/core.py\n",
}


def write_sdist(path, files, top="pymc-1.0"):
    """Write a reproducible tarball: equal ``files`` give byte-identical archives."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w") as tar,
    ):
        for relative, content in files.items():
            info = tarfile.TarInfo(f"{top}/{relative}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


@pytest.fixture
def fake_files():
    """Content of the fake sdist, by path below its top folder."""
    return dict(FAKE_SDIST)


@pytest.fixture
def make_sdist():
    """Write an sdist tarball holding the given files."""
    return write_sdist


@pytest.fixture
def fake_dist(tmp_path):
    """A pinned distribution in a throwaway repository whose verified sdist is already cached."""
    probe = Distribution("pymc", "1.0", "", "pymc", tmp_path)
    write_sdist(probe.sdist_path, FAKE_SDIST)
    return Distribution("pymc", "1.0", sha256_of(probe.sdist_path), "pymc", tmp_path)
