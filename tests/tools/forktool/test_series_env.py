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
"""The stage of a PR: .venv's packages without the fork's, and the commit's own metadata."""

import json
import os
import stat
import subprocess
import sys

from pathlib import Path

from forktool.layout import Distribution, Layout
from forktool.series_env import ALONE, Stage, _ensure_venv, shared_site


def _executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull}  # fmt: skip
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            check=True, env=env)  # fmt: skip
    return result.stdout.strip()


def test_the_shared_site_lends_every_package_of_venv_but_the_forks(tmp_path):
    layout = Layout(tmp_path)
    site = tmp_path / "site-packages"
    for folder in ("numpy", "numpy-2.0.dist-info", "pymc-6.4.0+streaming.2.dist-info",
                   "pymc_extras-0.15.1+streaming.2.dist-info", "pymc_marketing-0.1.dist-info",
                   "__pycache__"):  # fmt: skip
        (site / folder).mkdir(parents=True)
    # Editable installs of the work trees: path entries and finders that name them.
    (site / "__editable__.pymc-6.4.0+streaming.2.pth").write_text(f"{tmp_path}/.fork/src/pymc\n")
    (site / "_editable_impl_pymc_extras.pth").write_text(f"{tmp_path}/.fork/src/pymc-extras\n")
    (site / "distutils-precedence.pth").write_text("import _distutils_hack\n")
    _executable(layout.venv_python, f"#!/bin/sh\necho {site}\n")
    dists = [Distribution(name, "1", "", package, tmp_path)
             for name, package in (("pymc", "pymc"), ("pymc-extras", "pymc_extras"))]  # fmt: skip

    shared = shared_site(layout, dists)
    assert shared == tmp_path / ".fork/series/shared"
    assert sorted(path.name for path in shared.iterdir()) == [
        "distutils-precedence.pth",
        "numpy",
        "numpy-2.0.dist-info",
        "pymc_marketing-0.1.dist-info",
    ]
    assert (shared / "numpy").resolve() == site / "numpy"


def test_a_series_venv_imports_the_shared_packages_and_pip_sees_only_its_own(tmp_path):
    layout = Layout(tmp_path)
    layout.venv_python.parent.mkdir(parents=True)
    layout.venv_python.symlink_to(sys.executable)
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "borrowed.py").write_text("WHERE = 'shared'\n")
    python = _ensure_venv(layout, tmp_path / "venv", shared)
    probe = [str(python), "-c", "import borrowed, sys; print(sys.path.count(borrowed.__file__.rpartition('/')[0]))"]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    assert subprocess.run(probe, capture_output=True, text=True, env=env).stdout == "1\n"
    alone = subprocess.run(probe, capture_output=True, text=True, env={**env, ALONE: "1"})
    assert "No module named 'borrowed'" in alone.stderr
    # A second call keeps the venv (and what was installed into it).
    (tmp_path / "venv/kept").write_text("")
    assert _ensure_venv(layout, tmp_path / "venv", shared) == python
    assert (tmp_path / "venv/kept").exists()


def test_a_commit_is_installed_again_only_when_its_packaging_changes(tmp_path):
    tree = tmp_path / "checkout"
    tree.mkdir()
    _git(tree, "init", "-q")
    commits = []
    for name, text in (("pyproject.toml", "[project]\n"), ("module.py", "X = 1\n"),
                       ("pyproject.toml", "[project.entry-points.x]\ny = 'module:X'\n")):  # fmt: skip
        (tree / name).write_text(text)
        _git(tree, "add", name)
        _git(tree, "commit", "-q", "-m", name)
        commits.append(_git(tree, "rev-parse", "HEAD"))
    log = tmp_path / "pip.jsonl"
    python = _executable(
        tmp_path / "venv/bin/python",
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(log)!r}, 'a') as log:\n"
        f"    log.write(json.dumps([sys.argv[1:], os.environ.get({ALONE!r}),\n"
        "        os.environ.get('SETUPTOOLS_SCM_PRETEND_VERSION_FOR_PYMC_EXTRAS')]) + '\\n')\n",
    )
    dist = Distribution("pymc-extras", "0.15.1", "", "pymc_extras", tmp_path)
    stage = Stage(dist, python, tree)
    for commit in commits:
        stage.move(commit)
        (tree / ".hypothesis").mkdir()  # what a run leaves behind: cleaned at the next move
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(calls) == 2  # the first commit, and the one that changes pyproject.toml
    arguments, alone, version = calls[1]
    assert arguments[:5] == ["-m", "pip", "install", "--quiet", "--no-deps"]
    assert arguments[-2:] == ["--editable", str(tree)]
    assert (alone, version) == ("1", "0.15.1")
    assert _git(tree, "rev-parse", "HEAD") == commits[-1]
    assert (tree / ".hypothesis").exists()
    stage.move(commits[0])
    assert not (tree / ".hypothesis").exists()
