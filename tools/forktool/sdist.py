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
"""Download pinned source distributions, verify their hashes, and read their files."""

import hashlib
import os
import shutil
import tarfile
import tempfile

from pathlib import Path

from forktool import ForkError, run_checked
from forktool.layout import Distribution

__all__ = ["digest", "ensure_sdist", "pristine_files", "sha256_of"]


def digest(content: bytes) -> str:
    """Hex sha256 of ``content``."""
    return hashlib.sha256(content).hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_sdist(dist: Distribution, python: Path) -> Path:
    """Return the verified sdist of ``dist``, downloading it with ``python``'s pip if needed.

    ``python`` must satisfy the distribution's ``Requires-Python``: pip refuses to download
    pymc 6 from a Python 3.11.

    Raises
    ------
    ForkError
        When the downloaded file's sha256 differs from the pin.
    """
    if dist.sdist_path.exists():
        if sha256_of(dist.sdist_path) == dist.sha256:
            return dist.sdist_path
        # A cached file that no longer matches was damaged or replaced: fetch it again.
        dist.sdist_path.unlink()
    dist.sdist_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dist.sdist_path.parent) as tmp:
        command = [
            str(python), "-m", "pip", "download", "--quiet", "--no-deps",
            # Source only for this package; build tools for its metadata may come as wheels
            # (`:all:` would build hatchling, setuptools... from source too, recursively).
            "--no-binary", dist.name, "--dest", tmp, f"{dist.name}=={dist.version}",
        ]  # fmt: skip
        run_checked(
            command,
            f"downloading the {dist.name} {dist.version} sdist",
            hint="Check that the package index is reachable, then run the build again.",
        )
        downloaded = Path(tmp) / dist.sdist_name
        if not downloaded.exists():
            raise ForkError(f"pip downloaded no {dist.sdist_name}; found {os.listdir(tmp)}")
        actual = sha256_of(downloaded)
        if actual != dist.sha256:
            raise ForkError(
                f"{dist.sdist_name} from the package index has sha256 {actual}, but "
                f"upstream.toml pins {dist.sha256}. Refusing to build from an unverified "
                "source. If the pin is wrong, correct it only after checking the new file."
            )
        shutil.move(downloaded, dist.sdist_path)
    return dist.sdist_path


def pristine_files(dist: Distribution) -> dict[str, bytes]:
    """Every regular file of the verified sdist, keyed by its path below the top folder."""
    if not dist.sdist_path.exists() or sha256_of(dist.sdist_path) != dist.sha256:
        raise ForkError(
            f"{dist.sdist_path} is missing or does not match its pin; run `make build` first."
        )
    files: dict[str, bytes] = {}
    with tarfile.open(dist.sdist_path) as tar:
        for member in tar.getmembers():
            content = tar.extractfile(member) if member.isfile() else None
            if content is None:
                continue
            _, _, relative = member.name.partition("/")
            files[relative] = content.read()
    return files
