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
"""The fork's virtual environment: a Python PyMC 6 accepts, with the fork installed editable."""

import hashlib
import os
import shutil
import subprocess

from pathlib import Path

from forktool import ForkError, run_checked
from forktool.layout import Distribution, Layout

__all__ = ["ensure_venv", "find_python", "install", "install_group"]

# PyMC 6.4 declares Requires-Python >=3.12,<3.15.
_SUPPORTED = ((3, 12), (3, 14))
_CANDIDATES = ("python3.12", "python3.13", "python3.14", "python3")
# pip learned `--group` (PEP 735 dependency groups) in 25.1.
_PIP = "pip>=25.1"
_STAMP = ".fork-install-stamp"


def _is_supported(python: str | Path) -> bool:
    """Whether ``python`` runs and is a supported version (a pyenv shim may exist but fail)."""
    low, high = _SUPPORTED
    check = f"import sys; sys.exit(not {low} <= sys.version_info[:2] <= {high})"
    try:
        return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0
    except OSError:
        return False


def find_python() -> Path:
    """A Python interpreter PyMC 6 supports: ``$FORK_PYTHON``, then ``PATH``, then pyenv."""
    chosen = os.environ.get("FORK_PYTHON")
    if chosen:
        if not _is_supported(chosen):
            raise ForkError(
                f"FORK_PYTHON={chosen} is not a working Python {_SUPPORTED[0][0]}."
                f"{_SUPPORTED[0][1]}-{_SUPPORTED[1][1]}; point it at one or unset it."
            )
        return Path(chosen)
    candidates: list[str | Path | None] = [shutil.which(name) for name in _CANDIDATES]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(pyenv_root.glob("versions/3.1[234].*/bin/python3"))
    for candidate in candidates:
        if candidate is not None and _is_supported(candidate):
            return Path(candidate)
    raise ForkError(
        "no Python 3.12-3.14 found (PyMC 6 does not install on 3.11). Install one, e.g. "
        "`apt-get install python3.12`, `pyenv install 3.12` or `uv python install 3.12`, "
        "or set FORK_PYTHON to its path."
    )


def ensure_venv(layout: Layout) -> Path:
    """Create ``.venv`` on a supported Python unless a working one exists; return its python."""
    if layout.venv_python.exists() and _is_supported(layout.venv_python):
        return layout.venv_python
    python = find_python()
    if layout.venv.exists():
        shutil.rmtree(layout.venv)
    run_checked([str(python), "-m", "venv", str(layout.venv)], f"creating .venv with {python}")
    run_checked(
        [str(layout.venv_python), "-m", "pip", "install", "--quiet", "--upgrade", _PIP],
        "upgrading pip in .venv",
    )
    return layout.venv_python


def _install_stamp(layout: Layout, dists: list[Distribution]) -> str:
    """Digest of everything that decides what ``install`` puts into the environment."""
    digest = hashlib.sha256(str(layout.venv_python.resolve()).encode())
    inputs = [layout.root / "pyproject.toml", layout.pins_path]
    for dist in dists:
        inputs += [dist.work_dir / name for name in ("pyproject.toml", "setup.py", "setup.cfg")]
    for path in inputs:
        digest.update(path.name.encode() + (path.read_bytes() if path.exists() else b""))
    return digest.hexdigest()


def install(layout: Layout, dists: list[Distribution], *, group: str = "test") -> bool:
    """Install the work trees editable, plus dependency ``group``; skip if nothing changed.

    Editable installs use setuptools' ``compat`` mode, which puts the work tree on ``sys.path``
    through a ``.pth`` file. The default mode installs an import hook that runs *after* the
    path search, so Python started from the repository root would import our overlay folder
    ``pymc/`` (which has no ``__init__.py``) as an empty namespace package instead of PyMC.
    """
    stamp_path = layout.venv / _STAMP
    stamp = _install_stamp(layout, dists)
    if stamp_path.exists() and stamp_path.read_text() == stamp:
        return False
    command = [str(layout.venv_python), "-m", "pip", "install", "--quiet"]
    command += ["--config-settings", "editable_mode=compat"]
    for dist in dists:
        command += ["--editable", str(dist.work_dir)]
    command += ["--group", group]
    run_checked(command, "installing the fork into .venv", cwd=layout.root)
    stamp_path.write_text(stamp)
    return True


def install_group(layout: Layout, group: str) -> bool:
    """Install the dependency group ``group`` of ``pyproject.toml`` into ``.venv``.

    Skipped when neither the environment's Python nor ``pyproject.toml`` changed since the
    last install of this group (e.g. ``lint``, whose ruff and mypy ``make gates`` runs).
    """
    stamp_path = layout.venv / f".fork-{group}-stamp"
    digest = hashlib.sha256(str(layout.venv_python.resolve()).encode())
    digest.update((layout.root / "pyproject.toml").read_bytes())
    stamp = digest.hexdigest()
    if stamp_path.exists() and stamp_path.read_text() == stamp:
        return False
    run_checked(
        [str(layout.venv_python), "-m", "pip", "install", "--quiet", "--group", group],
        f"installing the dependency group {group!r} into .venv",
        cwd=layout.root,
    )
    stamp_path.write_text(stamp)
    return True
