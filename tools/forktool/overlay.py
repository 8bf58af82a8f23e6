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
"""Our files in the upstream trees: which repository folder goes where, and linking them in.

Three folders of the repository hold files that belong to an upstream repository, each at a
place of its own there:

============================  ======================================
repository                    upstream tree of the distribution
============================  ======================================
``pymc/…``                    ``pymc/…`` (the package; ``pymc_extras/…`` likewise)
``tests/pymc/…``              ``tests/…`` (``tests/pymc_extras/…`` for pymc-extras)
``docs/upstream/<dist>/…``    ``…`` (the repository root: API pages, ``docs/…``)
============================  ======================================

The work tree gets symlinks to them: a folder upstream lacks is linked whole (files added to it
later are live at once), a file in a folder upstream has is linked on its own. A file of ours
at the path of an upstream file is refused: edits to upstream files are patches.
"""

import os

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forktool import ForkError
from forktool.layout import Distribution

__all__ = [
    "Overlay",
    "link_overlays",
    "linked_paths",
    "overlay_files",
    "overlays",
    "repository_path",
    "shadowing",
    "upstream_path",
]

# Written by Python and pytest next to our files; never part of the fork.
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".hypothesis", ".mypy_cache"})
_IGNORED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class Overlay:
    """One folder of the repository and the folder of the upstream tree its files go to."""

    source: Path
    target: str  # "" for the root of the upstream tree

    def upstream(self, file: Path) -> str:
        """Path in the upstream tree of ``file``, a path below ``source``."""
        return (PurePosixPath(self.target) / file.relative_to(self.source).as_posix()).as_posix()

    def files(self) -> Iterator[Path]:
        """Every file below ``source``, skipping caches that Python and pytest write there."""
        if not self.source.is_dir():
            return
        for path in sorted(self.source.rglob("*")):
            relative = path.relative_to(self.source)
            if _IGNORED_DIRS.intersection(relative.parts) or path.name.endswith(_IGNORED_SUFFIXES):
                continue
            if path.is_file():
                yield path


def overlays(dist: Distribution) -> list[Overlay]:
    """The repository folders of ``dist``'s files, each with its place in the upstream tree."""
    return [
        Overlay(dist.overlay_dir, dist.package),
        Overlay(dist.test_overlay_dir, "tests"),
        Overlay(dist.docs_overlay_dir, ""),
    ]


def _check_docs_overlay(dist: Distribution) -> None:
    """``docs/upstream/<dist>/`` may not reach into the package or tests: they have folders."""
    docs = dist.docs_overlay_dir
    for name in (dist.package, "tests"):
        if (docs / name).exists():
            home = dist.overlay_dir if name == dist.package else dist.test_overlay_dir
            raise ForkError(
                f"{docs / name} would put files into {name}/ of {dist.name} through the docs "
                f"overlay; move them to {home.relative_to(dist.root)}/ instead."
            )


def overlay_files(dist: Distribution) -> dict[str, Path]:
    """Every file of ours for ``dist``: ``{path in the upstream tree: file in the repository}``."""
    _check_docs_overlay(dist)
    files: dict[str, Path] = {}
    for overlay in overlays(dist):
        for path in overlay.files():
            files[overlay.upstream(path)] = path
    return dict(sorted(files.items()))


def upstream_path(dist: Distribution, repository_relative: str) -> str | None:
    """Where the repository file ``repository_relative`` goes upstream; None if it does not."""
    path = dist.root / repository_relative
    for overlay in overlays(dist):
        if path == overlay.source or path.is_relative_to(overlay.source):
            return overlay.upstream(path).strip("/") or None
    return None


def repository_path(dist: Distribution, upstream_relative: str) -> str:
    """Where a new file at ``upstream_relative`` of the upstream tree belongs in the repository."""
    parts = PurePosixPath(upstream_relative).parts
    if parts and parts[0] == dist.package:
        source, rest = dist.overlay_dir, parts[1:]
    elif parts and parts[0] == "tests":
        source, rest = dist.test_overlay_dir, parts[1:]
    else:
        source, rest = dist.docs_overlay_dir, parts
    return source.joinpath(*rest).relative_to(dist.root).as_posix()


def shadowing(dist: Distribution, pristine: dict[str, bytes]) -> list[str]:
    """Our files (repository paths) that sit at the path of an upstream file."""
    return sorted(
        path.relative_to(dist.root).as_posix()
        for relative, path in overlay_files(dist).items()
        if relative in pristine
    )


def _upstream_dirs(pristine: dict[str, bytes]) -> set[str]:
    """Every folder of the upstream tree, including those holding only folders."""
    folders = {""}
    for relative in pristine:
        folders.update(parent.as_posix() for parent in PurePosixPath(relative).parents)
    folders.discard(".")  # the root, which PurePosixPath calls "."
    return folders


def _drop_broken_links(tree: Path) -> None:
    """Remove links to files deleted or moved in the repository: they would break imports."""
    for path in list(tree.rglob("*")):
        if path.is_symlink() and not path.exists():
            path.unlink()


def _link(source: Path, target: Path) -> None:
    if target.is_symlink():
        if target.resolve() == source.resolve():
            return
        target.unlink()
    elif target.exists():
        raise ForkError(
            f"{target} is a real file in the work tree where the link to {source} belongs; "
            "move anything worth keeping into the repository and delete it."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


def link_overlays(dist: Distribution, pristine: dict[str, bytes]) -> None:
    """Symlink our files into the work tree: new folders whole, otherwise file by file.

    Raises
    ------
    ForkError
        If a file of ours sits at the path of an upstream file.
    """
    shadows = shadowing(dist, pristine)
    if shadows:
        raise ForkError(
            f"{', '.join(shadows)} exist(s) upstream in {dist.name}. Do not add upstream "
            f"files to the repository: edit them in .fork/src/{dist.name}/ and run `make "
            "refresh` to record the change as a patch, with new logic in a new module."
        )
    if dist.work_dir.exists():
        _drop_broken_links(dist.work_dir)
    upstream_dirs = _upstream_dirs(pristine)
    for overlay in overlays(dist):
        if not overlay.source.is_dir():
            continue
        pending = [overlay.source]
        while pending:
            for source in sorted(pending.pop().iterdir()):
                if source.name in _IGNORED_DIRS:
                    continue
                relative = overlay.upstream(source)
                if source.is_dir() and relative in upstream_dirs:
                    pending.append(source)
                else:
                    _link(source, dist.work_dir / relative)


def linked_paths(tree: Path, top: str) -> list[str]:
    """The links to our files below ``tree/top``, as paths relative to ``tree``.

    A folder linked whole is one entry: its contents are ours by construction.
    """
    start = tree / top
    if start.is_symlink():
        return [top]
    found = []
    for folder, subfolders, files in os.walk(start):  # does not enter linked folders
        for name in subfolders + files:
            path = Path(folder, name)
            if path.is_symlink():
                found.append(path.relative_to(tree).as_posix())
    return sorted(found)
