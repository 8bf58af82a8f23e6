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
"""The patch series: one unified diff per edited upstream file, applied and regenerated.

``patches/<distribution>/<upstream path>.patch`` holds the edit to that one file. Text before
the first ``--- `` line is a free-form explanation for reviewers: GNU patch skips it, and
``refresh`` keeps it when it rewrites the diff below.
"""

import itertools
import subprocess
import tempfile

from pathlib import Path

from forktool import ForkError
from forktool.layout import Distribution

__all__ = [
    "apply_patch",
    "diff_text",
    "patch_content",
    "patch_path",
    "read_patches",
    "write_patch",
]

_SUFFIX = ".patch"


def patch_path(dist: Distribution, relative: str) -> Path:
    return dist.patch_dir / f"{relative}{_SUFFIX}"


def _diff_targets(text: str) -> list[str]:
    """The ``+++`` file names of a unified diff's headers.

    A header is a ``+++`` line right after a ``---`` line; an added content line that begins
    with ``++`` also starts with ``+++`` and must not count.
    """
    lines = text.splitlines()
    return [
        after[4:].split("\t")[0].strip()
        for before, after in itertools.pairwise(lines)
        if before.startswith("--- ") and after.startswith("+++ ")
    ]


def read_patches(dist: Distribution, pristine: dict[str, bytes]) -> dict[str, Path]:
    """Map each patched upstream path to its patch file, checking each names its own file."""
    patches: dict[str, Path] = {}
    if not dist.patch_dir.exists():
        return patches
    for path in sorted(dist.patch_dir.rglob(f"*{_SUFFIX}")):
        relative = path.relative_to(dist.patch_dir).as_posix()[: -len(_SUFFIX)]
        if relative not in pristine:
            raise ForkError(
                f"{path} patches {relative!r}, which is not a file of the {dist.name} "
                f"{dist.version} sdist. New files belong in {dist.overlay_dir.name}/, not in "
                "patches/."
            )
        targets = _diff_targets(path.read_text())
        if targets != [f"b/{relative}"]:
            raise ForkError(
                f"{path} must hold exactly one diff, of b/{relative}; it has {targets}. "
                "Regenerate it with `make refresh`."
            )
        patches[relative] = path
    return patches


def patch_content(relative: str, original: bytes, patch: Path) -> tuple[bytes | None, str]:
    """``original`` with ``patch`` applied by GNU patch, or None and patch's complaint.

    ``--fuzz=0``: a hunk whose context does not match exactly fails; line offsets are fine.
    """
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp, relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(original)
        result = subprocess.run(
            ["patch", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
             "--quiet", "-p1", "-d", tmp, "-i", str(patch)],
            capture_output=True, text=True,
        )  # fmt: skip
        if result.returncode != 0:
            return None, (result.stdout + result.stderr).strip()
        return target.read_bytes(), ""


def apply_patch(dist: Distribution, relative: str, original: bytes, patch: Path) -> bytes:
    """Return ``original`` with ``patch`` applied, or raise naming the patch that failed."""
    # --fuzz=0: a patch that only applies with fuzz is stale and must be refreshed.
    patched, complaint = patch_content(relative, original, patch)
    if patched is None:
        raise ForkError(
            f"{patch} does not apply cleanly to {relative} of {dist.name} {dist.version}:\n"
            f"{complaint}\n"
            f"Edit .fork/src/{dist.name}/{relative} by hand to redo the change, then run "
            "`make refresh`."
        )
    return patched


def diff_text(relative: str, original: bytes, edited: bytes) -> str:
    """A unified diff from ``original`` to ``edited``, labelled ``a/<path>`` and ``b/<path>``."""
    with tempfile.TemporaryDirectory() as tmp:
        before, after = Path(tmp, "before"), Path(tmp, "after")
        before.write_bytes(original)
        after.write_bytes(edited)
        result = subprocess.run(
            ["diff", "-u", "--label", f"a/{relative}", "--label", f"b/{relative}",
             str(before), str(after)],
            capture_output=True, text=True,
        )  # fmt: skip
    if result.returncode > 1:
        raise ForkError(f"diff failed on {relative}: {result.stderr.strip()}")
    return result.stdout


def write_patch(path: Path, diff: str) -> None:
    """Write ``diff`` to ``path``, keeping the explanation above the old diff if there was one."""
    header = ""
    if path.exists():
        lines = path.read_text().splitlines(keepends=True)
        first_diff_line = next((i for i, line in enumerate(lines) if line.startswith("--- ")), 0)
        header = "".join(lines[:first_diff_line])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + diff)
