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
"""Build the fork's wheels and prove they install with plain pip into a fresh environment."""

import shutil

from pathlib import Path

from forktool import ForkError, run_checked
from forktool.layout import Distribution, Layout

__all__ = ["build_wheels", "verify_wheels"]

_VERSION_PROBE = (
    "import importlib.metadata as m, pymc, pymc_extras; "
    "print(pymc.__version__, m.version('pymc-extras'))"
)


def build_wheels(layout: Layout, dists: list[Distribution]) -> list[Path]:
    """Build one wheel per distribution into ``dist/``, replacing earlier builds of them."""
    layout.dist_dir.mkdir(exist_ok=True)
    wheels = []
    for dist in dists:
        prefix = dist.name.replace("-", "_")
        for old in layout.dist_dir.glob(f"{prefix}-*.whl"):
            old.unlink()
        # setuptools never cleans build/: a module deleted from the overlay would otherwise
        # still ship in the next wheel.
        shutil.rmtree(dist.work_dir / "build", ignore_errors=True)
        try:
            run_checked(
                [str(layout.venv_python), "-m", "pip", "wheel", "--quiet", "--no-deps",
                 "--wheel-dir", str(layout.dist_dir), str(dist.work_dir)],
                f"building the {dist.name} wheel",
            )  # fmt: skip
        finally:
            shutil.rmtree(dist.work_dir / "build", ignore_errors=True)
        built = sorted(layout.dist_dir.glob(f"{prefix}-*.whl"))
        if len(built) != 1:
            raise ForkError(f"expected one {prefix} wheel in dist/, found {built}")
        wheels += built
    return wheels


def verify_wheels(layout: Layout, wheels: list[Path], python: Path) -> str:
    """Install ``wheels`` with plain pip into a new venv; return what the fork reports.

    Dependencies come from the package index, as they would for a user.
    """
    venv = layout.root / ".fork" / "wheel-check"
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [str(python), "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *map(str, wheels)],
        [str(venv / "bin" / "python"), "-c", _VERSION_PROBE],
    ]
    try:
        for step in steps:
            # Run outside the repository so its overlay folders cannot shadow the install.
            result = run_checked(step, "installing the wheels into a fresh venv", cwd=venv.parent)
        return result.stdout.strip()
    finally:
        shutil.rmtree(venv, ignore_errors=True)
