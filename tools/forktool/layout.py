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
"""Where everything lives: the pinned distributions and the paths derived from them."""

import tomllib

from dataclasses import dataclass
from pathlib import Path

from forktool import ForkError

__all__ = ["Distribution", "Layout"]

# Import package of each pinned distribution: our overlay files live in a top-level folder of
# this name, as they would in the upstream repository.
_PACKAGES = {"pymc": "pymc", "pymc-extras": "pymc_extras"}


@dataclass(frozen=True)
class Distribution:
    """One pinned upstream source distribution and where its pieces go."""

    name: str
    version: str
    sha256: str
    package: str
    root: Path

    @property
    def sdist_name(self) -> str:
        """File name of the sdist on the package index (normalized as in PEP 625)."""
        return f"{self.name.replace('-', '_')}-{self.version}.tar.gz"

    @property
    def sdist_path(self) -> Path:
        return self.root / ".fork" / "downloads" / self.sdist_name

    @property
    def patch_dir(self) -> Path:
        """``patches/<name>/``: one ``<upstream path>.patch`` per edited upstream file."""
        return self.root / "patches" / self.name

    @property
    def overlay_dir(self) -> Path:
        """The folder of our repository holding the files we add to this package."""
        return self.root / self.package

    @property
    def test_overlay_dir(self) -> Path:
        """``tests/<package>/``: our tests of this distribution, for its ``tests/`` folder."""
        return self.root / "tests" / self.package

    @property
    def docs_overlay_dir(self) -> Path:
        """``docs/upstream/<name>/``: files for the root of the upstream repository (API pages)."""
        return self.root / "docs" / "upstream" / self.name

    @property
    def pristine_dir(self) -> Path:
        """The sdist unpacked as it is: no patches, no overlay (for the upstream gates)."""
        return self.root / ".fork" / "pristine" / self.name

    @property
    def work_dir(self) -> Path:
        """Unpacked upstream sources with patches applied and our files linked in."""
        return self.root / ".fork" / "src" / self.name

    @property
    def manifest_path(self) -> Path:
        """Hashes of the work tree's upstream files as last assembled (see ``worktree``)."""
        return self.root / ".fork" / "src" / f"{self.name}.manifest.json"


@dataclass(frozen=True)
class Layout:
    """The repository: its pins file, distributions, virtual environment and outputs."""

    root: Path

    @property
    def pins_path(self) -> Path:
        return self.root / "upstream.toml"

    @property
    def venv(self) -> Path:
        return self.root / ".venv"

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def dist_dir(self) -> Path:
        return self.root / "dist"

    @property
    def reports_dir(self) -> Path:
        return self.root / ".fork" / "reports"

    @property
    def cache_dir(self) -> Path:
        """Caches of tools run on the trees (mypy); git-ignored with the rest of ``.fork/``."""
        return self.root / ".fork" / "cache"

    @property
    def series_plan(self) -> Path:
        """``series.toml``: the fork as an ordered series of upstream pull requests."""
        return self.root / "series.toml"

    @property
    def series_dir(self) -> Path:
        """Where ``make series`` writes each distribution's series repository and patches."""
        return self.dist_dir / "series"

    @property
    def series_work_dir(self) -> Path:
        """Where ``make series`` checks each PR: checkouts and their venvs (``series_env``)."""
        return self.root / ".fork" / "series"

    def distributions(self) -> list[Distribution]:
        """Read the pins file; every pinned distribution with its version and sha256."""
        try:
            pins = tomllib.loads(self.pins_path.read_text())
        except FileNotFoundError:
            raise ForkError(f"{self.pins_path} is missing: it pins the upstream sdists.") from None
        except tomllib.TOMLDecodeError as err:
            raise ForkError(f"{self.pins_path} is not valid TOML: {err}") from None
        unknown = sorted(set(pins) - set(_PACKAGES))
        if unknown:
            raise ForkError(
                f"{self.pins_path} pins {unknown}, but the fork knows only {sorted(_PACKAGES)}; "
                "add the package folder for a new distribution in forktool/layout.py."
            )
        dists = []
        for name, package in _PACKAGES.items():
            pin = pins.get(name)
            if not isinstance(pin, dict) or not {"version", "sha256"} <= pin.keys():
                raise ForkError(
                    f"{self.pins_path}: [{name}] needs both `version` and `sha256`; got {pin!r}."
                )
            dists.append(
                Distribution(
                    name=name,
                    version=str(pin["version"]),
                    sha256=str(pin["sha256"]).lower(),
                    package=package,
                    root=self.root,
                )
            )
        return dists
