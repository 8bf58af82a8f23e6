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
"""Test and docs overlays: linked into the work tree exactly like the package overlay."""

import pytest

from forktool import ForkError
from forktool.overlay import linked_paths, overlay_files, repository_path, upstream_path
from forktool.worktree import assemble, inspect


def _write(dist, relative, text=""):
    path = dist.root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_our_tests_go_to_the_tests_folder_of_the_work_tree(fake_dist):
    _write(fake_dist, "tests/pymc/streaming/test_stream.py")
    _write(fake_dist, "tests/pymc/variational/test_refresh.py")
    _write(fake_dist, "tests/pymc/test_top_level.py")
    assemble(fake_dist)

    tests = fake_dist.work_dir / "tests"
    # A folder upstream lacks is linked whole; a file in an upstream folder is linked singly.
    assert (tests / "streaming").is_symlink()
    assert not (tests / "variational").is_symlink()
    assert (tests / "variational/test_refresh.py").is_symlink()
    assert (tests / "test_top_level.py").is_symlink()
    assert (tests / "variational/test_opvi.py").read_text() == "def test_steps():\n    pass\n"
    # New test files in a linked folder are live without rebuilding.
    _write(fake_dist, "tests/pymc/streaming/test_batching.py")
    assert (tests / "streaming/test_batching.py").exists()
    assert not inspect(fake_dist)


def test_a_test_file_at_the_path_of_an_upstream_test_is_refused(fake_dist):
    _write(fake_dist, "tests/pymc/test_core.py", "def test_answer(): ...\n")
    with pytest.raises(ForkError, match=r"tests/pymc/test_core\.py exist\(s\) upstream in pymc"):
        assemble(fake_dist)
    assert inspect(fake_dist).shadowing == ["tests/pymc/test_core.py"]


def test_links_to_deleted_test_files_and_folders_are_removed(fake_dist):
    single = _write(fake_dist, "tests/pymc/variational/test_refresh.py")
    whole = _write(fake_dist, "tests/pymc/streaming/test_stream.py")
    assemble(fake_dist)
    single.unlink()
    whole.unlink()
    whole.parent.rmdir()
    assemble(fake_dist)
    assert not (fake_dist.work_dir / "tests/variational/test_refresh.py").is_symlink()
    assert not (fake_dist.work_dir / "tests/streaming").is_symlink()


def test_a_real_file_added_to_the_work_trees_tests_is_stray(fake_dist):
    assemble(fake_dist)
    (fake_dist.work_dir / "tests/variational/test_new.py").write_text("")
    findings = inspect(fake_dist)
    assert findings.stray == ["tests/variational/test_new.py"]
    assert "move it to tests/pymc/variational/test_new.py in the repository" in "\n".join(
        findings.messages(fake_dist)
    )


def test_docs_overlay_goes_to_the_root_of_the_upstream_tree(fake_dist):
    _write(fake_dist, "docs/upstream/pymc/docs/source/api/streaming.rst", "Streaming\n")
    _write(fake_dist, "docs/upstream/pymc/docs/source/api.rst.extra", "more\n")
    assemble(fake_dist)
    source = fake_dist.work_dir / "docs/source"
    assert not source.is_symlink()
    assert (source / "api").is_symlink()
    assert (source / "api.rst.extra").is_symlink()
    assert (source / "api.rst").read_text() == "API\n===\n"


def test_docs_overlay_may_not_reach_into_the_package(fake_dist):
    _write(fake_dist, "docs/upstream/pymc/pymc/extra.py")
    with pytest.raises(ForkError, match=r"move them to pymc/ instead"):
        assemble(fake_dist)


def test_overlay_files_map_repository_paths_to_upstream_paths(fake_dist):
    _write(fake_dist, "pymc/streaming/__init__.py")
    _write(fake_dist, "pymc/streaming/__pycache__/x.cpython-312.pyc")
    _write(fake_dist, "tests/pymc/streaming/test_stream.py")
    _write(fake_dist, "docs/upstream/pymc/docs/source/api/streaming.rst")
    files = overlay_files(fake_dist)
    assert {k: v.relative_to(fake_dist.root).as_posix() for k, v in files.items()} == {
        "docs/source/api/streaming.rst": "docs/upstream/pymc/docs/source/api/streaming.rst",
        "pymc/streaming/__init__.py": "pymc/streaming/__init__.py",
        "tests/streaming/test_stream.py": "tests/pymc/streaming/test_stream.py",
    }
    assert upstream_path(fake_dist, "tests/pymc/streaming") == "tests/streaming"
    assert upstream_path(fake_dist, "tests/helpers/models.py") is None
    assert repository_path(fake_dist, "tests/streaming/x.py") == "tests/pymc/streaming/x.py"
    assert repository_path(fake_dist, "docs/x.rst") == "docs/upstream/pymc/docs/x.rst"


def test_linked_paths_name_each_link_once(fake_dist):
    _write(fake_dist, "tests/pymc/streaming/test_stream.py")
    _write(fake_dist, "tests/pymc/streaming/test_sources.py")
    _write(fake_dist, "tests/pymc/variational/test_refresh.py")
    _write(fake_dist, "pymc/variational/refresh.py")
    assemble(fake_dist)
    assert linked_paths(fake_dist.work_dir, "tests") == [
        "tests/streaming",
        "tests/variational/test_refresh.py",
    ]
    assert linked_paths(fake_dist.work_dir, "pymc") == ["pymc/variational/refresh.py"]
    assert linked_paths(fake_dist.work_dir, "no-such-folder") == []
