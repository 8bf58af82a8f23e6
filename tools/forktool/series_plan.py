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
"""``series.toml``: the fork as an ordered series of pull requests per distribution.

One table per distribution; in it, ``[[<dist>.pr]]`` tables in the order the PRs apply, and
one ``[<dist>.fork-only]`` table for what never goes upstream::

    [[pymc.pr]]
    id = "streaming-minibatch"  # short, unique within the distribution
    title = "Streaming minibatches for pm.fit"  # the commit subject
    description = "docs/series/pymc/01-streaming-minibatch.md"  # the commit body (markdown)
    files = ["pymc/streaming/", "tests/pymc/streaming/"]  # files of ours; a folder: all in it
    patches = ["pymc/data.py", "pymc/sampling/mcmc.py#2"]  # upstream paths, "#1,3" or "#2-4"
    # selecting hunks of that patch

    [pymc.fork - only]
    reason = "The fork's own version number."
    patches = ["pymc/_version.py"]

``files`` name repository paths (``pymc/…``, ``tests/pymc/…``, ``docs/upstream/pymc/…``);
``patches`` name the patched upstream file, as in ``patches/<dist>/<path>.patch``.
"""

import re
import tomllib

from dataclasses import dataclass
from pathlib import Path

from forktool import ForkError
from forktool.layout import Distribution

__all__ = ["DistributionPlan", "Entry", "Selection", "load_plan"]

_PR_KEYS = {"id", "title", "description", "files", "patches"}
_FORK_ONLY_KEYS = {"reason", "files", "patches"}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_HUNKS = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


@dataclass(frozen=True)
class Selection:
    """One entry of ``patches``: an upstream file's patch, whole or some of its hunks."""

    path: str
    hunks: tuple[int, ...] | None  # 1-based hunk numbers; None: every hunk

    def __str__(self) -> str:
        if self.hunks is None:
            return self.path
        return f"{self.path}#{','.join(map(str, self.hunks))}"


@dataclass(frozen=True)
class Entry:
    """One pull request of the series, or the fork-only items (``id`` ``fork-only``)."""

    id: str
    title: str
    description: str | None  # repository path of the markdown description
    files: tuple[str, ...]
    patches: tuple[Selection, ...]
    reason: str = ""

    @property
    def fork_only(self) -> bool:
        return self.id == "fork-only"

    @property
    def label(self) -> str:
        return "fork-only" if self.fork_only else f"PR {self.id!r}"


@dataclass(frozen=True)
class DistributionPlan:
    """The series of one distribution: its PRs in order, then what stays in the fork."""

    prs: tuple[Entry, ...]
    fork_only: Entry


def _strings(value: object, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ForkError(f"series.toml {where}: `{key}` must be a list of strings, got {value!r}.")
    return tuple(value)


def _selection(text: str, where: str) -> Selection:
    path, _, hunks = text.partition("#")
    if not hunks:
        return Selection(path.strip("/"), None)
    if not _HUNKS.match(hunks):
        raise ForkError(
            f"series.toml {where}: {text!r} selects hunks as {hunks!r}; write them like "
            f"'{path}#1,3' or '{path}#2-4' (hunk 1 is the patch's first `@@`)."
        )
    numbers: list[int] = []
    for part in hunks.split(","):
        first, _, last = part.partition("-")
        numbers += range(int(first), int(last or first) + 1)
    return Selection(path.strip("/"), tuple(numbers))


def _entry(table: object, where: str, *, fork_only: bool) -> Entry:
    if not isinstance(table, dict):
        raise ForkError(f"series.toml {where} must be a table, got {table!r}.")
    allowed = _FORK_ONLY_KEYS if fork_only else _PR_KEYS
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ForkError(
            f"series.toml {where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}."
        )
    files = _strings(table.get("files", []), where, "files")
    patches = tuple(
        _selection(text, where) for text in _strings(table.get("patches", []), where, "patches")
    )
    if fork_only:
        reason = table.get("reason", "")
        if not isinstance(reason, str) or ((files or patches) and not reason.strip()):
            raise ForkError(f"series.toml {where}: say in `reason` why these stay in the fork.")
        return Entry("fork-only", "", None, files, patches, reason.strip())
    for key in ("id", "title", "description"):
        if not isinstance(table.get(key), str) or not table[key].strip():
            raise ForkError(f"series.toml {where}: `{key}` must be a non-empty string.")
    if not _ID.match(table["id"]):
        raise ForkError(
            f"series.toml {where}: id {table['id']!r} must be lower-case letters, digits and "
            "dashes (it names the PR's branch and patch)."
        )
    if not files and not patches:
        raise ForkError(f"series.toml {where}: a PR needs `files` or `patches`.")
    return Entry(table["id"], table["title"].strip(), table["description"], files, patches)


def load_plan(path: Path, dists: list[Distribution]) -> dict[str, DistributionPlan]:
    """Read ``series.toml``: every distribution's PRs in order and its fork-only items.

    Raises
    ------
    ForkError
        If the file is missing, not TOML, or not in the format of this module's docstring.
    """
    try:
        tables = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ForkError(
            f"{path} is missing: it lists the fork as a series of upstream PRs (see "
            "docs/fork.md, 'The PR series')."
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ForkError(f"{path} is not valid TOML: {err}") from None
    names = [dist.name for dist in dists]
    unknown = sorted(set(tables) - set(names))
    if unknown:
        raise ForkError(f"series.toml has tables {unknown}; the pinned distributions are {names}.")
    plans = {}
    for name in names:
        table = tables.get(name, {})
        extra = sorted(set(table) - {"pr", "fork-only"})
        if extra:
            raise ForkError(
                f"series.toml [{name}]: unknown key(s) {extra}; use [[{name}.pr]] tables and "
                f"one [{name}.fork-only] table."
            )
        prs = tuple(
            _entry(pr, f"[[{name}.pr]] #{number}", fork_only=False)
            for number, pr in enumerate(table.get("pr", []), start=1)
        )
        ids = [pr.id for pr in prs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ForkError(f"series.toml [{name}]: PR id(s) {repeated} used more than once.")
        fork_only = _entry(table.get("fork-only", {}), f"[{name}.fork-only]", fork_only=True)
        plans[name] = DistributionPlan(prs, fork_only)
    return plans
