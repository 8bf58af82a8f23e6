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
import shutil

import pytest

from forktool import ForkError
from forktool.worktree import assemble, inspect, refresh

EXPECTED_DIFF = """\
--- a/pymc/core.py
+++ b/pymc/core.py
@@ -1,2 +1,2 @@
 def answer():
-    return 41
+    return 42
"""


def _edit_core(dist):
    (dist.work_dir / "pymc/core.py").write_text("def answer():\n    return 42\n")


def test_assemble_unpacks_pristine_sources_and_is_idempotent(fake_dist, fake_files):
    assert assemble(fake_dist) is True
    for relative, content in fake_files.items():
        assert (fake_dist.work_dir / relative).read_bytes() == content
    assert assemble(fake_dist) is False
    assert not inspect(fake_dist)


def test_refresh_records_an_edit_as_a_unified_diff(fake_dist):
    assemble(fake_dist)
    _edit_core(fake_dist)

    assert refresh(fake_dist) == {"patches/pymc/pymc/core.py.patch": "added"}
    assert (fake_dist.patch_dir / "pymc/core.py.patch").read_text() == EXPECTED_DIFF
    assert refresh(fake_dist) == {}
    # The recorded patch reproduces the edit in a tree assembled from scratch.
    shutil.rmtree(fake_dist.work_dir)
    assert assemble(fake_dist) is True
    assert "return 42" in (fake_dist.work_dir / "pymc/core.py").read_text()


def test_refresh_keeps_the_explanation_above_the_diff(fake_dist):
    assemble(fake_dist)
    _edit_core(fake_dist)
    refresh(fake_dist)
    patch = fake_dist.patch_dir / "pymc/core.py.patch"
    patch.write_text("Why: the answer is 42.\n\n" + patch.read_text())
    (fake_dist.work_dir / "pymc/core.py").write_text("def answer():\n    return 43\n")

    assert refresh(fake_dist) == {"patches/pymc/pymc/core.py.patch": "updated"}
    text = patch.read_text()
    assert text.startswith("Why: the answer is 42.\n\n--- a/pymc/core.py")
    assert "+    return 43" in text


def test_refresh_removes_the_patch_of_a_reverted_file(fake_dist, fake_files):
    assemble(fake_dist)
    _edit_core(fake_dist)
    refresh(fake_dist)
    (fake_dist.work_dir / "pymc/core.py").write_bytes(fake_files["pymc/core.py"])

    assert refresh(fake_dist) == {"patches/pymc/pymc/core.py.patch": "removed"}
    assert not list(fake_dist.patch_dir.rglob("*.patch"))


def test_inspect_reports_unrecorded_edits_until_refreshed(fake_dist):
    assemble(fake_dist)
    _edit_core(fake_dist)
    assert inspect(fake_dist).unrecorded == ["pymc/core.py"]
    refresh(fake_dist)
    assert not inspect(fake_dist)


def test_inspect_reports_deleted_and_stray_files(fake_dist):
    assemble(fake_dist)
    (fake_dist.work_dir / "pymc/variational/opvi.py").unlink()
    (fake_dist.work_dir / "pymc/variational/streaming.py").write_text("x = 1\n")
    findings = inspect(fake_dist)
    assert findings.missing == ["pymc/variational/opvi.py"]
    assert findings.stray == ["pymc/variational/streaming.py"]


def test_build_metadata_rewritten_by_installs_is_not_an_edit(fake_dist):
    assemble(fake_dist)
    (fake_dist.work_dir / "pymc.egg-info/SOURCES.txt").write_text("rewritten by setuptools\n")
    assert not inspect(fake_dist)


def test_assemble_keeps_unrecorded_edits_when_the_patch_set_changes(fake_dist):
    assemble(fake_dist)
    _edit_core(fake_dist)
    refresh(fake_dist)
    # Someone else's patch arrives (e.g. `git pull`) while this tree has its own new edit.
    (fake_dist.patch_dir / "pymc/core.py.patch").write_text(
        EXPECTED_DIFF.replace("return 42", "return 40")
    )
    (fake_dist.work_dir / "pymc/core.py").write_text("def answer():\n    return 99\n")

    with pytest.raises(ForkError, match=r"edits that patches/ does not record: pymc/core\.py"):
        assemble(fake_dist)
    assert "return 99" in (fake_dist.work_dir / "pymc/core.py").read_text()


def test_assemble_replaces_untouched_files_when_the_patch_set_changes(fake_dist):
    assemble(fake_dist)
    patch = fake_dist.patch_dir / "pymc/core.py.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(EXPECTED_DIFF)

    assert assemble(fake_dist) is True
    assert "return 42" in (fake_dist.work_dir / "pymc/core.py").read_text()


def test_a_patch_that_no_longer_applies_is_named(fake_dist):
    patch = fake_dist.patch_dir / "pymc/core.py.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(EXPECTED_DIFF.replace("return 41", "return 7"))
    with pytest.raises(ForkError, match=r"core\.py\.patch does not apply cleanly to pymc/core\.py"):
        assemble(fake_dist)


def test_a_patch_for_a_file_upstream_does_not_have_is_refused(fake_dist):
    patch = fake_dist.patch_dir / "pymc/streaming.py.patch"
    patch.parent.mkdir(parents=True)
    patch.write_text(EXPECTED_DIFF)
    with pytest.raises(ForkError, match=r"not a file of the pymc 1\.0 sdist"):
        assemble(fake_dist)


def test_overlay_links_new_folders_whole_and_new_files_singly(fake_dist):
    (fake_dist.overlay_dir / "streaming").mkdir(parents=True)
    (fake_dist.overlay_dir / "streaming/__init__.py").write_text("")
    (fake_dist.overlay_dir / "variational").mkdir()
    (fake_dist.overlay_dir / "variational/refresh.py").write_text("")
    assemble(fake_dist)

    package = fake_dist.work_dir / "pymc"
    assert (package / "streaming").is_symlink()
    assert not (package / "variational").is_symlink()
    assert (package / "variational/refresh.py").is_symlink()
    # A module added later to a linked folder is live without rebuilding.
    (fake_dist.overlay_dir / "streaming/sources.py").write_text("")
    assert (package / "streaming/sources.py").exists()
    assert not inspect(fake_dist)


def test_overlay_drops_links_to_deleted_files(fake_dist):
    (fake_dist.overlay_dir / "variational").mkdir(parents=True)
    ours = fake_dist.overlay_dir / "variational/refresh.py"
    ours.write_text("")
    assemble(fake_dist)
    ours.unlink()
    assemble(fake_dist)
    assert not (fake_dist.work_dir / "pymc/variational/refresh.py").is_symlink()


def test_overlay_may_not_shadow_an_upstream_file(fake_dist):
    fake_dist.overlay_dir.mkdir()
    (fake_dist.overlay_dir / "core.py").write_text("def answer(): ...\n")
    with pytest.raises(ForkError, match=r"pymc/core\.py exist\(s\) upstream in pymc"):
        assemble(fake_dist)
    assert inspect(fake_dist).shadowing == ["pymc/core.py"]


def test_an_added_line_starting_with_plus_signs_is_content_not_a_header(fake_dist):
    assemble(fake_dist)
    (fake_dist.work_dir / "pymc/core.py").write_text("def answer():\n    return 41\n++ x\n")
    refresh(fake_dist)
    assert "+++ x" in (fake_dist.patch_dir / "pymc/core.py.patch").read_text()

    shutil.rmtree(fake_dist.work_dir)
    assert assemble(fake_dist) is True
    assert (fake_dist.work_dir / "pymc/core.py").read_text().endswith("++ x\n")
