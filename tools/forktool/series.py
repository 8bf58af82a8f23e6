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
"""The fork as a series of pull requests: each PR's tree, composed and checked in memory.

Starting from the pristine sdist, every PR of ``series.toml`` adds its files of ours and applies
its share of the patches' hunks (GNU patch, ``--fuzz=0``, line offsets allowed); the fork-only
items come last. The series is sound when

- every file of ours and every hunk of ``patches/`` belongs to exactly one PR or is fork-only,
- every PR applies on the tree the PRs before it left, and has a description, and
- the last tree plus the fork-only items is the assembled work tree: pristine + patches + ours.

Inside a file of ours, lines between ``# fork-only: begin`` and ``# fork-only: end``, and lines
ending in ``# fork-only``, belong to the fork alone (a compatibility path for the fork's own
earlier API, say): the PR that owns the file gets it without them, and the fork-only step
puts them back. Likewise lines between ``# series: <id>: begin`` and ``# series: <id>: end``, and
lines ending in ``# series: <id>``, belong to the later PR ``<id>``, which adds them to a file an
earlier PR added (an import that registers that PR's module, say).

A PR's files carry none of these tags: a tagged line keeps its code without the tag comment,
block edges are dropped, and where lines were dropped the blank lines on both sides of the cut
shrink to the larger of the two runs (none at the top or end of a file), so the PR's file is
laid out as ruff format would lay it out. Only the fork-only step, which gives the fork's own
tree, keeps the tags. Any other fork marker left in a PR's file (a tag the parser does not
recognise, ``fork-only`` in a comment) is a problem: it would reach upstream.
"""

import re
import tempfile

from dataclasses import dataclass, field
from pathlib import Path

from forktool import ForkError
from forktool.hunks import FileDiff, parse_diff
from forktool.layout import Distribution
from forktool.overlay import overlay_files, upstream_path
from forktool.patchset import apply_patch, patch_content, read_patches
from forktool.sdist import pristine_files
from forktool.series_plan import DistributionPlan, Entry

__all__ = ["Series", "Step", "compose", "fork_markers", "render", "without_fork_only"]

_FORK_ONLY = "fork-only"
# What marks a line as the fork's in any form: a series tag, or fork-only anywhere.
_MARKER = re.compile(rb"#\s*series:|fork-only", re.IGNORECASE)


def _tag(line: bytes) -> tuple[str, str] | None:
    """``(owner, "begin" | "end" | "line")`` of a tagged line; owner is a PR id or fork-only."""
    text = line.decode("utf-8", "replace").rstrip()
    marker = text.rpartition("#")[2].strip() if "#" in text else ""
    if marker.startswith("series:"):
        marker = marker.removeprefix("series:").strip()
    elif not marker.startswith(_FORK_ONLY):
        return None
    owner, _, edge = (part.strip() for part in marker.partition(":"))
    if edge in ("begin", "end") and text.lstrip().startswith("#"):
        return owner, edge
    return (owner, "line") if not edge else None


def _untagged(line: bytes) -> bytes:
    """``line`` without its trailing tag comment (``code  # series: <id>`` gives ``code``)."""
    body = line.rstrip(b"\r\n")
    return body[: body.rindex(b"#")].rstrip() + line[len(body) :]


def _blank(line: bytes) -> bool:
    return not line.strip()


def _close_seams(lines: list[bytes], seams: list[int]) -> list[bytes]:
    """Shrink the blank lines around each place where lines were dropped (module docstring)."""
    for seam in reversed(seams):
        before = 0
        while before < seam and _blank(lines[seam - before - 1]):
            before += 1
        after = 0
        while seam + after < len(lines) and _blank(lines[seam + after]):
            after += 1
        if seam + after == len(lines):  # the end of the file: no blank line may end it
            del lines[seam - before : seam + after]
        elif seam == before:  # the top of the file
            del lines[seam : seam + after]
        else:
            del lines[seam : seam + min(before, after)]
    return lines


def render(content: bytes, applied: set[str]) -> bytes:
    """``content`` with only the tagged lines of the entries ``applied`` so far (module doc).

    The tags themselves stay only once fork-only is applied: the fork's tree is ours verbatim.
    """
    keep_tags = _FORK_ONLY in applied
    kept: list[bytes] = []
    seams: list[int] = []

    def drop() -> None:
        if not seams or seams[-1] != len(kept):
            seams.append(len(kept))

    skipping = False
    for line in content.splitlines(keepends=True):
        tag = _tag(line)
        if tag is not None and tag[1] != "line":  # a block's edge: kept with its block
            skipping = tag[1] == "begin" and tag[0] not in applied
            if tag[0] in applied and keep_tags:
                kept.append(line)
            else:
                drop()
        elif skipping or (tag is not None and tag[0] not in applied):
            drop()
        elif tag is None or keep_tags:
            kept.append(line)
        elif _blank(_untagged(line)):  # a tag on a line of its own
            drop()
        else:
            kept.append(_untagged(line))
    return b"".join(_close_seams(kept, seams))


def without_fork_only(content: bytes) -> bytes:
    """``content`` as the PR series has it, before the fork-only step."""
    return render(content, _ALL_PRS)


class _Everything(set):
    """Every PR id, but not fork-only: what the last PR of a series has applied."""

    def __contains__(self, owner: object) -> bool:
        return owner != _FORK_ONLY


_ALL_PRS = _Everything()


@dataclass
class Step:
    """One PR (or the fork-only items) applied: the whole tree after it, and what it changed."""

    entry: Entry
    tree: dict[str, bytes]
    changed: list[str]


@dataclass
class Series:
    """A distribution's series: the pristine tree, each step after it, and what is wrong."""

    dist: Distribution
    base: dict[str, bytes]
    steps: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def prs(self) -> list[Step]:
        return [step for step in self.steps if not step.entry.fork_only]


@dataclass
class _Inputs:
    """Everything the series is made of, read once."""

    pristine: dict[str, bytes]
    patches: dict[str, Path]
    diffs: dict[str, FileDiff]
    ours: dict[str, Path]  # upstream path -> repository file


def _read_inputs(dist: Distribution) -> _Inputs:
    pristine = pristine_files(dist)
    patches = read_patches(dist, pristine)
    diffs = {
        relative: parse_diff(path.read_text(), str(path.relative_to(dist.root)))
        for relative, path in patches.items()
    }
    return _Inputs(pristine, patches, diffs, overlay_files(dist))


def _files_of(entry: Entry, dist: Distribution, inputs: _Inputs, problems: list[str]) -> list[str]:
    """The upstream paths of the files of ours an entry names (a folder names all below it)."""
    found = []
    for name in entry.files:
        target = upstream_path(dist, name.rstrip("/"))
        where = f"series.toml [{dist.name}] {entry.label}: files entry {name!r}"
        if target is None:
            problems.append(
                f"{where} is not a file of ours for {dist.name}: those are under "
                f"{dist.package}/, tests/{dist.package}/ and docs/upstream/{dist.name}/."
            )
            continue
        matched = [
            relative
            for relative in inputs.ours
            if relative == target or relative.startswith(target + "/")
        ]
        if not matched:
            problems.append(f"{where} matches no file in the repository.")
        found += matched
    return found


def _hunks_of(entry: Entry, dist: Distribution, inputs: _Inputs, problems: list[str]):
    """``{upstream path: [hunk numbers]}`` of the patches an entry names, in its order."""
    selected: dict[str, list[int]] = {}
    for selection in entry.patches:
        where = f"series.toml [{dist.name}] {entry.label}: patches entry {str(selection)!r}"
        diff = inputs.diffs.get(selection.path)
        if diff is None:
            problems.append(f"{where}: there is no patches/{dist.name}/{selection.path}.patch.")
            continue
        count = len(diff.hunks)
        numbers = range(1, count + 1) if selection.hunks is None else selection.hunks
        wrong = [number for number in numbers if not 1 <= number <= count]
        if wrong:
            problems.append(f"{where}: the patch has hunks 1-{count}, not {wrong}.")
        selected.setdefault(selection.path, []).extend(n for n in numbers if 1 <= n <= count)
    return selected


def _apply_hunks(
    relative: str, content: bytes, diff: FileDiff, numbers: list[int]
) -> tuple[bytes | None, str]:
    with tempfile.TemporaryDirectory() as tmp:
        patch = Path(tmp, "selection.patch")
        patch.write_text(diff.render(numbers))
        return patch_content(relative, content, patch)


def _step(
    entry: Entry,
    dist: Distribution,
    inputs: _Inputs,
    tree: dict[str, bytes],
    problems: list[str],
    applied: set[str],
) -> tuple[Step, list[str], dict[str, list[int]]]:
    files = _files_of(entry, dist, inputs, problems)
    hunks = _hunks_of(entry, dist, inputs, problems)
    tree = dict(tree)
    applied = {*applied, _FORK_ONLY if entry.fork_only else entry.id}
    retagged = []
    for relative, path in inputs.ours.items():
        if relative in files or relative in tree:
            content = render(path.read_bytes(), applied)
            if relative not in files and tree[relative] != content:
                retagged.append(relative)  # lines tagged for this entry join a file added earlier
            tree[relative] = content
    for relative, numbers in hunks.items():
        patched, complaint = _apply_hunks(relative, tree[relative], inputs.diffs[relative], numbers)
        if patched is None:
            problems.append(
                f"series.toml [{dist.name}] {entry.label}: hunk(s) {sorted(set(numbers))} of "
                f"patches/{dist.name}/{relative}.patch do not apply to the tree the PRs before "
                f"it leave (GNU patch --fuzz=0):\n{complaint}\nMove the PR that provides their "
                "context earlier, or take whole hunks together."
            )
        else:
            tree[relative] = patched
    changed = sorted(set(files) | set(hunks) | set(retagged))
    return Step(entry, tree, changed), files, hunks


def _check_ownership(
    dist: Distribution,
    inputs: _Inputs,
    file_owners: dict[str, list[str]],
    hunk_owners: dict[tuple[str, int], list[str]],
) -> list[str]:
    """Every file of ours and every hunk in exactly one PR or fork-only."""
    problems = []
    for relative, path in inputs.ours.items():
        owners = file_owners.get(relative, [])
        name = path.relative_to(dist.root).as_posix()
        if not owners:
            problems.append(
                f"{name} is in no PR of series.toml [{dist.name}] and not fork-only: add it "
                "to the PR it belongs to."
            )
        elif len(owners) > 1:
            problems.append(f"{name} is listed more than once in series.toml: {owners}.")
    for relative, diff in inputs.diffs.items():
        for number, hunk in enumerate(diff.hunks, start=1):
            owners = hunk_owners.get((relative, number), [])
            name = f"patches/{dist.name}/{relative}.patch hunk {number} ({hunk.location})"
            if not owners:
                problems.append(
                    f"{name} is in no PR of series.toml [{dist.name}] and not fork-only: add "
                    f"'{relative}' (or '{relative}#{number}') to the PR it belongs to."
                )
            elif len(owners) > 1:
                problems.append(f"{name} is listed more than once in series.toml: {owners}.")
    return problems


def _check_tags(dist: Distribution, inputs: _Inputs, ids: set[str]) -> list[str]:
    """Lines tagged for a PR that the plan does not have (a typo would drop them silently)."""
    problems = []
    for path in inputs.ours.values():
        for number, line in enumerate(path.read_bytes().splitlines(), start=1):
            tag = _tag(line)
            if tag is not None and tag[0] != _FORK_ONLY and tag[0] not in ids:
                problems.append(
                    f"{path.relative_to(dist.root)}:{number} is tagged for PR {tag[0]!r}, which "
                    f"series.toml [{dist.name}] does not have; its PRs are {sorted(ids)}."
                )
    return problems


def fork_markers(content: bytes) -> list[tuple[int, str]]:
    """``(line number, line)`` of each line of ``content`` that carries a fork marker."""
    return [
        (number, line.decode("utf-8", "replace").strip())
        for number, line in enumerate(content.splitlines(), start=1)
        if _MARKER.search(line)
    ]


def _check_markers(dist: Distribution, steps: list[Step]) -> list[str]:
    """Fork markers that would reach upstream: in any file a PR adds or changes."""
    problems = []
    for step in steps:
        for relative in step.changed:
            for number, line in fork_markers(step.tree.get(relative, b"")):
                problems.append(
                    f"series.toml [{dist.name}] {step.entry.label}: {relative}:{number} keeps a "
                    f"fork marker in the PR's file: {line!r}. Tags are `# series: <id>` or "
                    "`# fork-only` at the end of a line, or `...: begin` / `...: end` on lines "
                    "of their own (docs/fork.md); anything else would reach upstream."
                )
    return problems


def _check_descriptions(dist: Distribution, plan: DistributionPlan) -> list[str]:
    problems = []
    for entry in plan.prs:
        path = dist.root / str(entry.description)
        if not path.is_file() or not path.read_text().strip():
            problems.append(
                f"series.toml [{dist.name}] {entry.label}: its description {entry.description} "
                "is missing or empty; write what the PR does, why, and how it was tested."
            )
    return problems


def _assembled(dist: Distribution, inputs: _Inputs) -> dict[str, bytes]:
    """The content of the work tree ``make build`` assembles: pristine + patches + ours."""
    tree = dict(inputs.pristine)
    for relative, patch in inputs.patches.items():
        tree[relative] = apply_patch(dist, relative, inputs.pristine[relative], patch)
    for relative, path in inputs.ours.items():
        tree[relative] = path.read_bytes()
    return tree


def compose(dist: Distribution, plan: DistributionPlan) -> Series:
    """Apply ``plan``'s PRs in order to ``dist``'s pristine sdist, then the fork-only items.

    Problems are collected in ``Series.problems`` (all of them, for ``make check``), not raised.
    """
    try:
        inputs = _read_inputs(dist)
    except ForkError as err:
        return Series(dist, {}, problems=[str(err)])
    series = Series(dist, inputs.pristine)
    file_owners: dict[str, list[str]] = {}
    hunk_owners: dict[tuple[str, int], list[str]] = {}
    tree = inputs.pristine
    applied: set[str] = set()
    for entry in (*plan.prs, plan.fork_only):
        step, files, hunks = _step(entry, dist, inputs, tree, series.problems, applied)
        applied.add(_FORK_ONLY if entry.fork_only else entry.id)
        for relative in files:
            file_owners.setdefault(relative, []).append(entry.label)
        for relative, numbers in hunks.items():
            for number in numbers:
                hunk_owners.setdefault((relative, number), []).append(entry.label)
        series.steps.append(step)
        tree = step.tree
    series.problems += _check_tags(dist, inputs, {entry.id for entry in plan.prs})
    series.problems += _check_ownership(dist, inputs, file_owners, hunk_owners)
    series.problems += _check_descriptions(dist, plan)
    series.problems += _check_markers(dist, series.prs)
    if not series.problems:
        expected = _assembled(dist, inputs)
        differing = sorted(
            relative
            for relative in set(expected) | set(tree)
            if expected.get(relative) != tree.get(relative)
        )
        series.problems += [
            f"{dist.name}:{relative}: the series (all PRs + fork-only) gives other content than "
            "the assembled work tree; a hunk applied at another place than in its patch?"
            for relative in differing
        ]
    return series
