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
import subprocess
import tarfile

import pytest

from forktool.layout import Distribution, Layout
from forktool.sdist import sha256_of
from forktool.worktree import assemble

# A tiny stand-in for an upstream sdist: the tool treats it exactly like pymc's.
FAKE_SDIST = {
    "pyproject.toml": b'[project]\nname = "pymc"\nversion = "1.0"\n',
    "pymc/__init__.py": b"from pymc.core import answer\n",
    "pymc/core.py": b"def answer():\n    return 41\n",
    "pymc/variational/__init__.py": b"",
    "pymc/variational/opvi.py": b"STEPS = 10\n",
    "pymc.egg-info/SOURCES.txt": b"pymc/core.py\n",
    "tests/test_core.py": b"from pymc.core import answer\n\n\ndef test_answer():\n    assert answer() == 41\n",
    "tests/variational/test_opvi.py": b"def test_steps():\n    pass\n",
    "docs/source/api.rst": b"API\n===\n",
}

# pymc-extras' stand-in: a tests package, and pytest collecting doctests as upstream's does.
EXTRAS_FILES = {
    "pyproject.toml": (
        b'[project]\nname = "pymc-extras"\n\n'
        b'[tool.pytest.ini_options]\naddopts = ["-v", "--doctest-modules"]\n'
    ),
    "pymc_extras/__init__.py": b"VERSION = '0.1'\n" + b"# padding\n" * 60,
    "pymc_extras/inference/__init__.py": b"",
    "pymc_extras/inference/fit.py": b"STEPS = 1\n",
    "tests/__init__.py": b"",
    "tests/inference/__init__.py": b"",
    "tests/inference/test_fit.py": b"def test_fit():\n    pass\n",
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


@pytest.fixture(scope="session")
def make_sdist():
    """Write an sdist tarball holding the given files."""
    return write_sdist


@pytest.fixture
def fake_dist(tmp_path):
    """A pinned distribution in a throwaway repository whose verified sdist is already cached."""
    probe = Distribution("pymc", "1.0", "", "pymc", tmp_path)
    write_sdist(probe.sdist_path, FAKE_SDIST)
    return Distribution("pymc", "1.0", sha256_of(probe.sdist_path), "pymc", tmp_path)


@pytest.fixture
def extras_files():
    """Content of the fake pymc-extras sdist, by path below its top folder."""
    return dict(EXTRAS_FILES)


@pytest.fixture
def repo(tmp_path, fake_files, make_sdist):
    """A git repository pinning fake pymc and pymc-extras sdists, assembled."""
    sdists = {
        "pymc": (tmp_path / ".fork/downloads/pymc-1.0.tar.gz", fake_files, "pymc-1.0"),
        "pymc-extras": (
            tmp_path / ".fork/downloads/pymc_extras-0.1.tar.gz",
            EXTRAS_FILES,
            "pymc_extras-0.1",
        ),
    }
    pins = []
    for name, (path, files, top) in sdists.items():
        make_sdist(path, files, top=top)
        version = top.rpartition("-")[2]
        pins.append(f'[{name}]\nversion = "{version}"\nsha256 = "{sha256_of(path)}"\n')
    (tmp_path / "upstream.toml").write_text("\n".join(pins))
    # Nothing of ours yet, so an empty series covers it.
    (tmp_path / "series.toml").write_text("")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    layout = Layout(tmp_path)
    for dist in layout.distributions():
        assemble(dist)
    return layout
