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
"""The installed pymc and pymc_extras are the fork, assembled exactly as pinned and patched."""

import importlib
import importlib.metadata
import re
import subprocess
import sys

from pathlib import Path

import pytest

from forktool.layout import Layout
from forktool.patchset import apply_patch, read_patches
from forktool.sdist import pristine_files

REPO_ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = Layout(REPO_ROOT).distributions()
_LOCAL_VERSION = r"\+streaming\.(\d+)"


def _installed_version(name: str, pinned: str) -> int:
    version = importlib.metadata.version(name)
    match = re.fullmatch(re.escape(pinned) + _LOCAL_VERSION, version)
    assert match, f"{name} reports {version!r}, expected {pinned}+streaming.N"
    return int(match.group(1))


def test_versions_are_the_pinned_upstream_plus_one_fork_release():
    pins = {dist.name: dist.version for dist in DISTRIBUTIONS}
    fork_release = {name: _installed_version(name, pinned) for name, pinned in pins.items()}
    assert len(set(fork_release.values())) == 1, f"fork releases differ: {fork_release}"

    import pymc

    assert pymc.__version__ == importlib.metadata.version("pymc")


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda d: d.name)
def test_packages_are_imported_from_the_assembled_work_tree(dist):
    module = importlib.import_module(dist.package)
    assert Path(module.__file__).resolve().is_relative_to(dist.work_dir.resolve())


PATCHES = [
    (dist, relative, patch)
    for dist in DISTRIBUTIONS
    for relative, patch in read_patches(dist, pristine_files(dist)).items()
]


@pytest.mark.parametrize(
    "dist, relative, patch", PATCHES, ids=[f"{d.name}:{r}" for d, r, _ in PATCHES]
)
def test_every_patch_is_applied_to_the_installed_sources(dist, relative, patch):
    pristine = pristine_files(dist)[relative]
    expected = apply_patch(dist, relative, pristine, patch)
    assert expected != pristine, f"{patch} changes nothing"
    installed = (dist.work_dir / relative).read_bytes()
    assert installed == expected, (
        f"{dist.work_dir / relative} differs from its pristine source + {patch.name}: "
        "record the edit with `make refresh`, or rebuild with `make build`"
    )


def test_installed_requirements_are_consistent():
    """pymc-extras' relaxed pin accepts the fork's pymc; nothing else conflicts."""
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pymc_extras_imports_without_warnings():
    """pymc-extras' own test configuration turns every warning at import into an error."""
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", "import pymc, pymc_extras"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
