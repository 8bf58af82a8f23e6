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
"""The size budget of the patches: what a maintainer reads in one sitting.

Counted: every added and every removed line in the hunks of ``patches/``. Not counted: hunks
``series.toml`` lists as fork-only (they never go upstream), and patches of upstream files under
``tests/`` or ``docs/`` (tests and prose, reviewed differently from code). Patches of
``pyproject.toml`` count: the extras they declare are part of the API a maintainer accepts.
Our new files are not patches and do not count.
"""

from dataclasses import dataclass

from forktool.hunks import parse_diff
from forktool.layout import Distribution
from forktool.patchset import read_patches
from forktool.sdist import pristine_files
from forktool.series_plan import Entry

__all__ = ["BUDGET", "PatchSize", "budget_report", "measure"]

BUDGET = 200
_NOT_CODE = ("tests/", "docs/")


@dataclass(frozen=True)
class PatchSize:
    """The changed lines of one patch file, and how many of them count against the budget."""

    patch: str
    added: int
    removed: int
    counted: int
    note: str = ""


def measure(dist: Distribution, fork_only: Entry | None) -> list[PatchSize]:
    """The size of each of ``dist``'s patches; ``fork_only`` hunks are shown, not counted."""
    whole: set[str] = set()
    hunks: dict[str, set[int]] = {}
    for selection in fork_only.patches if fork_only else ():
        if selection.hunks is None:
            whole.add(selection.path)
        else:
            hunks.setdefault(selection.path, set()).update(selection.hunks)
    sizes = []
    for relative, path in read_patches(dist, pristine_files(dist)).items():
        diff = parse_diff(path.read_text(), str(path))
        added = sum(hunk.added for hunk in diff.hunks)
        removed = sum(hunk.removed for hunk in diff.hunks)
        name = path.relative_to(dist.root).as_posix()
        if relative.startswith(_NOT_CODE):
            sizes.append(PatchSize(name, added, removed, 0, "tests/docs, not counted"))
            continue
        if relative in whole:
            sizes.append(PatchSize(name, added, removed, 0, "fork-only, not counted"))
            continue
        skipped = hunks.get(relative, set())
        counted = sum(
            hunk.added + hunk.removed
            for number, hunk in enumerate(diff.hunks, start=1)
            if number not in skipped
        )
        note = f"fork-only hunks {sorted(skipped)} not counted" if skipped else ""
        sizes.append(PatchSize(name, added, removed, counted, note))
    return sizes


def budget_report(sizes: list[PatchSize], budget: int = BUDGET) -> tuple[list[str], bool]:
    """Lines of a per-patch table with the total; and whether the total is within ``budget``."""
    width = max((len(size.patch) for size in sizes), default=10)
    lines = [f"{'patch':<{width}}  {'+':>5} {'-':>5} {'counted':>8}"]
    for size in sizes:
        note = f"  ({size.note})" if size.note else ""
        lines.append(
            f"{size.patch:<{width}}  {size.added:>5} {size.removed:>5} {size.counted:>8}{note}"
        )
    total = sum(size.counted for size in sizes)
    within = total <= budget
    verdict = "within" if within else "OVER"
    lines.append(
        f"size: {total} changed lines (added + removed) in patches/, {verdict} the budget of "
        f"{budget}; not counted: fork-only hunks, patches of tests/ and docs/, our new files"
    )
    return lines, within
