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
"""Where a PR of the series runs: a checkout of its commit, and a venv that imports only it.

Per distribution, ``.fork/series/<distribution>/`` holds

- ``checkout/``: a clone of ``dist/series/<distribution>/repo``, moved from commit to commit;
- ``needs/<name>/``: clones of the series of the distributions pinned before it, at their last
  PR (pymc-extras' PRs build on the whole pymc series);
- ``venv/``: a virtual environment on ``.venv``'s Python. The checkout and the clones it needs
  are installed into it editable, with no dependencies, again whenever a commit changes their
  packaging files, so their metadata (pymc-extras' entry points) is the commit's own. Every
  other package comes from ``.venv`` through ``.fork/series/shared/``: links to the entries of
  ``.venv``'s site-packages, less the fork's own distributions (their metadata and editable
  links). Nothing of the assembled fork can be imported, or found by ``importlib.metadata``.

pip runs with ``FORK_SERIES_ALONE=1``, which hides ``shared/``, so that it sees (and could
touch) nothing but the series venv.
"""

import hashlib
import json
import os
import shutil
import subprocess

from dataclasses import dataclass, field
from pathlib import Path

from forktool import ForkError, run_checked
from forktool.layout import Distribution, Layout
from forktool.series_repo import BRANCH

__all__ = ["ALONE", "Stage", "git_lines", "prepare_stage", "shared_site"]

# Set for pip: the series venv without the packages it borrows from .venv.
ALONE = "FORK_SERIES_ALONE"
_LINK_PTH = "zz-fork-series-shared.pth"
_BASE_STAMP = ".fork-series-base"
_INSTALL_STAMP = ".fork-series-installed"
# Files that decide what an editable install writes into the environment (metadata).
_PACKAGING = ("pyproject.toml", "setup.py", "setup.cfg")
# Editable installs leave small files (.pth, import finders) naming the installed tree.
_SMALL_FILE = 1 << 16


def git_lines(repo: Path, *args: str) -> list[str]:
    """The output lines of ``git -C repo args``; a ForkError if git fails."""
    result = run_checked(["git", "-C", str(repo), *args], f"git {args[0]} in {repo}")
    return result.stdout.splitlines()


def _normalized(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _is_ours(entry: Path, names: set[str], trees: list[str]) -> bool:
    """Whether a site-packages entry belongs to a distribution of the fork."""
    if entry.suffix in (".dist-info", ".egg-info"):
        return _normalized(entry.name.split("-")[0]) in names
    if entry.is_file() and entry.stat().st_size < _SMALL_FILE:
        text = entry.read_text(errors="replace")
        return any(tree in text for tree in trees)
    return False


def _site_packages(python: Path) -> Path:
    command = [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    return Path(run_checked(command, f"asking {python} for its site-packages").stdout.strip())


def shared_site(layout: Layout, dists: list[Distribution]) -> Path:
    """``.fork/series/shared/``: links to ``.venv``'s packages, less the fork's own (module doc).

    Rebuilt on every call, so that it follows ``.venv``.
    """
    source = _site_packages(layout.venv_python)
    shared = layout.series_work_dir / "shared"
    if shared.exists():
        shutil.rmtree(shared)
    shared.mkdir(parents=True)
    names = {_normalized(dist.name) for dist in dists}
    trees = [str(dist.work_dir) for dist in dists]
    for entry in sorted(source.iterdir()):
        if entry.name != "__pycache__" and not _is_ours(entry, names, trees):
            (shared / entry.name).symlink_to(entry)
    return shared


def _base_of(layout: Layout) -> str:
    """What the series venvs are made from: ``.venv``'s interpreter and its version."""
    command = [str(layout.venv_python), "-c", "import sys; print(sys.version)"]
    version = run_checked(command, "asking .venv's python its version").stdout.strip()
    return json.dumps([str(layout.venv_python.resolve()), version])


def _ensure_venv(layout: Layout, venv: Path, shared: Path) -> Path:
    """Create ``venv`` on ``.venv``'s Python unless it exists; link it to ``shared``."""
    python = venv / "bin" / "python"
    stamp = venv / _BASE_STAMP
    base = _base_of(layout)
    if not (python.exists() and stamp.exists() and stamp.read_text() == base):
        run_checked(
            [str(layout.venv_python), "-m", "venv", "--clear", str(venv)],
            f"creating the series environment {venv}",
        )
        stamp.write_text(base)
    guard = f"os.environ.get({ALONE!r}) or {str(shared)!r} in sys.path"
    (_site_packages(python) / _LINK_PTH).write_text(
        f"import os, site, sys; {guard} or site.addsitedir({str(shared)!r})\n"
    )
    return python


def _clone(origin: Path, target: Path) -> None:
    """``target``: a clone of ``origin`` with all of its commits (made or brought up to date)."""
    if not (target / ".git").is_dir():
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        run_checked(
            ["git", "clone", "--quiet", "--no-checkout", str(origin), str(target)],
            f"cloning {origin}",
        )
    # `make series` writes the repository anew each time: fetch whatever it holds now.
    git_lines(target, "fetch", "--quiet", "--force", "--tags", "origin")


def _move(tree: Path, commit: str) -> None:
    """Check ``commit`` out in ``tree``, and remove everything a run left there."""
    git_lines(tree, "checkout", "--quiet", "--force", "--detach", commit)
    git_lines(tree, "clean", "--quiet", "-d", "--force", "-x")


def _packaging_digest(tree: Path) -> str:
    digest = hashlib.sha256(str(tree).encode())
    for name in _PACKAGING:
        path = tree / name
        digest.update(name.encode() + (path.read_bytes() if path.exists() else b"-"))
    return digest.hexdigest()


@dataclass
class Stage:
    """One distribution's series checkout and the venv its code runs in."""

    dist: Distribution
    python: Path
    tree: Path
    # The distributions it builds on, each with its clone at its series' last PR.
    needs: list[tuple[Distribution, Path]] = field(default_factory=list)

    @property
    def roots(self) -> dict[str, Path]:
        """Each installed package's import name, and the tree it must be imported from."""
        return {dist.package: tree for dist, tree in [*self.needs, (self.dist, self.tree)]}

    def environment(self) -> dict[str, str]:
        """The environment of the PR's code: nothing else on its path, no bytecode written."""
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        return env

    def move(self, commit: str) -> None:
        """Check out ``commit`` and install it (and what it needs) if its packaging changed."""
        _move(self.tree, commit)
        self._install()

    def _install(self) -> None:
        trees = [tree for _, tree in self.needs] + [self.tree]
        stamp_path = self.python.parent.parent / _INSTALL_STAMP
        stamp = json.dumps([_packaging_digest(tree) for tree in trees])
        if stamp_path.exists() and stamp_path.read_text() == stamp:
            return
        env = {**os.environ, ALONE: "1"}
        # pymc-extras takes its version from git (hatch-vcs): give it the release's.
        for dist, _ in [*self.needs, (self.dist, self.tree)]:
            env[f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{_normalized(dist.name).upper()}"] = (
                dist.version
            )
        command = [str(self.python), "-m", "pip", "install", "--quiet", "--no-deps"]
        # A .pth path entry, as in .venv (forktool.environment): no import hook.
        command += ["--config-settings", "editable_mode=compat"]
        for tree in trees:
            command += ["--editable", str(tree)]
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-3000:]
            raise ForkError(
                f"installing the series checkout {self.tree} into {self.python.parent.parent} "
                f"failed (exit {result.returncode}): {' '.join(command)}\n{output}"
            )
        stamp_path.write_text(stamp)


def prepare_stage(
    layout: Layout, dist: Distribution, needs: list[Distribution], shared: Path
) -> Stage:
    """The stage of ``dist``: its venv, its checkout of the series, and the series it needs.

    ``needs`` are the distributions whose whole series ``dist``'s PRs build on; each is
    installed at the last commit of its series repository (``make series`` writes them all).
    """
    root = layout.series_work_dir / dist.name
    python = _ensure_venv(layout, root / "venv", shared)
    tree = root / "checkout"
    _clone(layout.series_dir / dist.name / "repo", tree)
    clones = []
    for need in needs:
        clone = root / "needs" / need.name
        _clone(layout.series_dir / need.name / "repo", clone)
        _move(clone, f"origin/{BRANCH}")
        clones.append((need, clone))
    return Stage(dist, python, tree, clones)
