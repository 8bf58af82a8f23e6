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
"""The work tree: pristine upstream sources, our patches applied, our new files linked in.

``.fork/src/<distribution>/`` is what gets installed. Upstream files are real files there, so a
developer edits them in place and ``refresh`` turns the edits into patches. Our own files (the
package, test and docs overlays of ``overlay``) are symlinks to the repository, so edits to them
are live without rebuilding.

A manifest beside each tree records the hash of every upstream file as assembled. It lets
``assemble`` tell files nobody touched (safe to replace when the patch set changes) from
edits not yet recorded in ``patches/`` (never overwritten).
"""

import hashlib
import json
import os
import shutil

from dataclasses import dataclass, field
from pathlib import Path

from forktool import ForkError
from forktool.layout import Distribution
from forktool.overlay import link_overlays, repository_path, shadowing
from forktool.patchset import apply_patch, diff_text, patch_path, read_patches, write_patch
from forktool.sdist import digest, pristine_files

__all__ = ["Findings", "assemble", "inspect", "refresh"]


@dataclass
class _Sources:
    """Pristine files of one distribution, its patches, and the files they produce."""

    pristine: dict[str, bytes]
    patches: dict[str, Path]
    expected: dict[str, bytes]
    stamp: str

    @classmethod
    def load(cls, dist: Distribution) -> "_Sources":
        pristine = pristine_files(dist)
        patches = read_patches(dist, pristine)
        expected = dict(pristine)
        for relative, patch in patches.items():
            expected[relative] = apply_patch(dist, relative, pristine[relative], patch)
        return cls(pristine, patches, expected, _stamp(dist, patches))

    def tracked(self) -> list[str]:
        """Upstream files whose content the fork controls.

        Install metadata is left out: see ``_is_install_metadata``.
        """
        return sorted(relative for relative in self.pristine if not _is_install_metadata(relative))


@dataclass
class Findings:
    """What ``inspect`` found wrong with one distribution's work tree and overlay."""

    unrecorded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    shadowing: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.unrecorded or self.missing or self.stray or self.shadowing)

    def messages(self, dist: Distribution) -> list[str]:
        """One line per finding, saying what to do about it."""
        tree = f".fork/src/{dist.name}"
        return (
            [f"{tree}/{p}: edited, not recorded in patches/ (run `make refresh`)"
             for p in self.unrecorded]
            + [f"{tree}/{p}: upstream file deleted from the work tree" for p in self.missing]
            + [f"{tree}/{p}: new file in the work tree; move it to "
               f"{repository_path(dist, p)} in the repository" for p in self.stray]
            + [f"{p}: the repository holds a file of the {dist.name} sdist at its path in the "
               "work tree; record edits to it as a patch" for p in self.shadowing]
        )  # fmt: skip


def _stamp(dist: Distribution, patches: dict[str, Path]) -> str:
    """Identifies what a work tree is assembled from: the sdist and the patch files."""
    stamp = hashlib.sha256(dist.sha256.encode())
    for relative, patch in sorted(patches.items()):
        stamp.update(relative.encode() + b"\0" + patch.read_bytes())
    return stamp.hexdigest()


def _is_install_metadata(relative: str) -> bool:
    """``*.egg-info`` folders, which setuptools rewrites on every install."""
    return any(part.endswith(".egg-info") for part in relative.split("/"))


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() and not path.is_symlink() else None


def _load_manifest(dist: Distribution) -> dict | None:
    try:
        return json.loads(dist.manifest_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_manifest(dist: Distribution, stamp: str, tracked: list[str]) -> None:
    files = {}
    for relative in tracked:
        content = _read(dist.work_dir / relative)
        if content is not None:
            files[relative] = digest(content)
    dist.manifest_path.write_text(json.dumps({"stamp": stamp, "files": files}, indent=0))


def assemble(dist: Distribution) -> bool:
    """Bring ``dist``'s work tree up to date; return whether upstream files were rewritten.

    Raises
    ------
    ForkError
        If the tree holds edits to upstream files that ``patches/`` does not record and that a
        changed patch set would overwrite.
    """
    sources = _Sources.load(dist)
    manifest = _load_manifest(dist)
    if manifest and manifest["stamp"] == sources.stamp and dist.work_dir.exists():
        link_overlays(dist, sources.pristine)
        return False
    if manifest and dist.work_dir.exists():
        assembled = manifest["files"]
        conflicts = []
        for relative in sources.tracked():
            current = _read(dist.work_dir / relative)
            untouched = current is not None and digest(current) == assembled.get(relative)
            if current != sources.expected[relative] and not untouched:
                conflicts.append(relative)
        if conflicts:
            raise ForkError(
                f"the patch set for {dist.name} changed, but .fork/src/{dist.name}/ has edits "
                f"that patches/ does not record: {', '.join(conflicts)}. Run `make refresh` "
                f"to keep them, or delete .fork/src/{dist.name}/ to discard them."
            )
    if dist.work_dir.exists():
        shutil.rmtree(dist.work_dir)
    for relative, content in sources.expected.items():
        target = dist.work_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    _write_manifest(dist, sources.stamp, sources.tracked())
    link_overlays(dist, sources.pristine)
    return True


def _prune_empty_folders(top: Path) -> None:
    """Remove folders below ``top`` left empty by deleted patches (deepest first)."""
    for folder in sorted(top.rglob("*"), reverse=True) if top.exists() else []:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def refresh(dist: Distribution) -> dict[str, str]:
    """Rewrite ``patches/`` from the work tree; return ``{patch path: what happened}``."""
    if not dist.work_dir.exists():
        raise ForkError(f".fork/src/{dist.name}/ does not exist; run `make build` first.")
    sources = _Sources.load(dist)
    changes = {}
    for relative in sources.tracked():
        current = _read(dist.work_dir / relative)
        if current is None:
            raise ForkError(
                f".fork/src/{dist.name}/{relative} was deleted. The patch set records edits, "
                "not deletions: restore the file (`make build` after removing its line from "
                "the manifest, or delete the whole work tree) and change its content instead."
            )
        path = patch_path(dist, relative)
        if current == sources.pristine[relative]:
            if relative in sources.patches:
                path.unlink()
                changes[str(path.relative_to(dist.root))] = "removed"
            continue
        if current == sources.expected[relative]:
            continue
        existed = path.exists()
        write_patch(path, diff_text(relative, sources.pristine[relative], current))
        changes[str(path.relative_to(dist.root))] = "updated" if existed else "added"
    _prune_empty_folders(dist.patch_dir)
    # The tree now equals pristine + patches by construction: record it as assembled.
    patches = read_patches(dist, sources.pristine)
    _write_manifest(dist, _stamp(dist, patches), sources.tracked())
    return changes


def inspect(dist: Distribution) -> Findings:
    """Check that patches apply and that the work tree holds nothing the repository lacks."""
    sources = _Sources.load(dist)  # raises if a patch does not apply to pristine sources
    findings = Findings(shadowing=shadowing(dist, sources.pristine))
    if not dist.work_dir.exists():
        return findings
    for relative in sources.tracked():
        current = _read(dist.work_dir / relative)
        if current is None:
            findings.missing.append(relative)
        elif current != sources.expected[relative]:
            findings.unrecorded.append(relative)
    for top in (dist.package, "tests"):
        for folder, subfolders, files in os.walk(dist.work_dir / top):
            subfolders[:] = [d for d in subfolders if d != "__pycache__"]
            for name in files:
                path = Path(folder, name)
                relative = path.relative_to(dist.work_dir).as_posix()
                if not path.is_symlink() and relative not in sources.pristine:
                    findings.stray.append(relative)
    return findings
