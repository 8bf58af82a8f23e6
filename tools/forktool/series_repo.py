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
"""Write a composed series out: a git repository, ``git format-patch`` files and ``SERIES.md``.

``dist/series/<distribution>/repo`` is a git repository whose first commit is the pristine
sdist (tagged ``v<version>``) and whose following commits on the branch ``streaming-series`` are
the PRs in order: subject the PR's title, body its description. Author, committer and dates are
fixed, so equal inputs give equal commits, hashes included. Beside it, one
``NNNN-<subject>.patch`` per PR and ``SERIES.md``, the index.
"""

import os
import shutil
import subprocess
import tempfile

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from forktool import ForkError
from forktool.layout import Distribution
from forktool.series import Series, Step

__all__ = ["BRANCH", "LineCounts", "line_counts", "write_series"]

BRANCH = "streaming-series"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "PyMC streaming fork",
    "GIT_AUTHOR_EMAIL": "streaming-fork@pymc.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "PyMC streaming fork",
    "GIT_COMMITTER_EMAIL": "streaming-fork@pymc.invalid",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    # No user or system configuration (signing, hooks, autocrlf) may change the output.
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
_DOC_SUFFIXES = (".md", ".rst", ".ipynb")


@dataclass
class LineCounts:
    """Lines added and removed by one PR, split by what a reviewer reads them as."""

    upstream: tuple[int, int] = (0, 0)  # changes to files the release has
    new: tuple[int, int] = (0, 0)  # new files (not tests, not docs)
    tests: tuple[int, int] = (0, 0)
    docs: tuple[int, int] = (0, 0)


def _git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), *args]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **_IDENTITY}
    )
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise ForkError(f"git {args[0]} in {repo} failed: {' '.join(command)}\n{output}")
    return result.stdout


def _write_tree(repo: Path, tree: dict[str, bytes], before: dict[str, bytes]) -> None:
    for relative in set(before) - set(tree):
        (repo / relative).unlink()
    for relative, content in tree.items():
        if before.get(relative) != content:
            target = repo / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "--all", "--force", ".")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as file:
        file.write(message)
    try:
        # verbatim: markdown headings start with '#', which the default cleanup would drop.
        _git(repo, "commit", "--quiet", "--allow-empty", "--cleanup=verbatim", "-F", file.name)
    finally:
        os.unlink(file.name)
    return _git(repo, "rev-parse", "HEAD").strip()


def _message(step: Step, dist: Distribution) -> str:
    description = (dist.root / str(step.entry.description)).read_text().strip()
    return f"{step.entry.title}\n\n{description}\n"


def _kind(relative: str, base: Collection[str]) -> str:
    if relative.startswith("tests/"):
        return "tests"
    if relative.startswith("docs/") or relative.endswith(_DOC_SUFFIXES):
        return "docs"
    return "upstream" if relative in base else "new"


def line_counts(repo: Path, before: str, after: str, base: Collection[str]) -> LineCounts:
    """Lines of the diff from commit ``before`` to ``after``; ``base``: the release's files."""
    counts = LineCounts()
    for line in _git(repo, "diff", "--numstat", "--no-renames", before, after).splitlines():
        added, removed, relative = line.split("\t", 2)
        kind = _kind(relative, base)
        old = getattr(counts, kind)
        plus, minus = (0, 0) if added == "-" else (int(added), int(removed))
        setattr(counts, kind, (old[0] + plus, old[1] + minus))
    return counts


def _cell(pair: tuple[int, int]) -> str:
    return "0" if pair == (0, 0) else f"+{pair[0]} −{pair[1]}"


def _index(series: Series, patches: list[str], counts: list[LineCounts]) -> str:
    dist = series.dist
    lines = [
        f"# {dist.name} {dist.version}: the streaming fork as a series of pull requests",
        "",
        f"Written by `make series` from `series.toml`. `repo/` is a git repository: tag "
        f"`v{dist.version}` is the {dist.sdist_name} sdist as released, and branch `{BRANCH}` "
        "adds one commit per PR, in this order. The `.patch` files beside this index are the "
        "same commits (`git format-patch`); apply them with `git am` on the release.",
        "",
        "Lines are added/removed: *upstream* in files the release has, *new* in new files, "
        "then tests and docs wherever they are.",
        "",
        "| # | pull request | patch | upstream | new | tests | docs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for number, (step, patch, count) in enumerate(zip(series.prs, patches, counts), start=1):
        lines.append(
            f"| {number} | {step.entry.title} (`{step.entry.id}`) | [{patch}]({patch}) | "
            f"{_cell(count.upstream)} | {_cell(count.new)} | {_cell(count.tests)} | "
            f"{_cell(count.docs)} |"
        )
    for number, step in enumerate(series.prs, start=1):
        lines += ["", f"## {number}. {step.entry.title}", ""]
        lines.append(f"Description: `{step.entry.description}`. Files:")
        lines.append("")
        lines += [f"- `{relative}`" for relative in step.changed]
    fork_only = next((s for s in series.steps if s.entry.fork_only), None)
    if fork_only and fork_only.changed:
        lines += ["", "## Not in the series: fork-only", "", fork_only.entry.reason, ""]
        lines += [f"- `{selection}`" for selection in fork_only.entry.patches]
        lines += [f"- `{name}`" for name in fork_only.entry.files]
    return "\n".join(lines) + "\n"


def write_series(series: Series, out: Path) -> Path:
    """Write ``series`` (which must have no problems) into ``out``; return ``out/SERIES.md``."""
    dist = series.dist
    if out.exists():
        shutil.rmtree(out)
    repo = out / "repo"
    repo.mkdir(parents=True)
    _git(repo, "init", "--quiet")
    _git(repo, "symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")
    _write_tree(repo, series.base, {})
    base = _commit(
        repo,
        f"{dist.name} {dist.version}, the sdist as released\n\n"
        f"{dist.sdist_name}, sha256 {dist.sha256}, unpacked; the series applies on top.\n",
    )
    _git(repo, "tag", f"v{dist.version}", base)
    before, tree = base, series.base
    counts = []
    for step in series.prs:
        _write_tree(repo, step.tree, tree)
        commit = _commit(repo, _message(step, dist))
        counts.append(line_counts(repo, before, commit, series.base))
        before, tree = commit, step.tree
    written = _git(
        repo, "format-patch", "--no-signature", "--output-directory", str(out),
        f"{base}..{BRANCH}",
    )  # fmt: skip
    patches = [Path(line).name for line in written.splitlines() if line.strip()]
    index = out / "SERIES.md"
    index.write_text(_index(series, patches, counts))
    return index
