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
"""An output is written where it was named, whole, and replaces another only when asked."""

import errno
import mmap
import os

import pytest

from pymc_extras.streaming.workflow import output_files
from pymc_extras.streaming.workflow.output_files import OutputFiles, check_output_path


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def write_file(path, content=b"new", **options):
    with OutputFiles(**options) as outputs:
        outputs.file(path).write(content)


def write_store(path, **options):
    with OutputFiles(**options) as outputs:
        store = outputs.folder(path)
        (store / "zarr.json").write_text("{}")
        (store / "c").mkdir()
        (store / "c" / "0").write_bytes(b"chunk")


def test_a_file_appears_whole_with_the_permissions_of_a_new_file(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    with OutputFiles() as outputs:
        handle = outputs.file(tmp_path / "out.bin")
        handle.write(b"part one, ")
        [temporary] = listing(tmp_path)  # only a temporary while it is written
        assert temporary.startswith(".out.bin.") and temporary.endswith(".tmp")
        handle.write(b"part two")
    assert listing(tmp_path) == ["out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"part one, part two"
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_store_appears_whole(tmp_path):
    write_store(tmp_path / "out.zarr")
    assert listing(tmp_path) == ["out.zarr"]
    assert (tmp_path / "out.zarr" / "c" / "0").read_bytes() == b"chunk"


@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
@pytest.mark.parametrize("dangling", [False, True], ids=["link", "dangling-link"])
def test_nothing_is_written_through_a_link(tmp_path, overwrite, dangling):
    victim = tmp_path / "elsewhere" / "victim.bin"
    victim.parent.mkdir()
    if not dangling:
        victim.write_bytes(b"precious")
    (tmp_path / "out.bin").symlink_to(victim)
    with pytest.raises(FileExistsError, match="symbolic link"):
        write_file(tmp_path / "out.bin", overwrite=overwrite)
    assert victim.exists() != dangling
    if not dangling:
        assert victim.read_bytes() == b"precious"
    assert listing(tmp_path) == ["elsewhere", "out.bin"]  # no temporary left


@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
def test_no_store_is_written_into_a_linked_folder(tmp_path, overwrite):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "zarr.json").write_text("precious")
    (tmp_path / "out.zarr").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(FileExistsError, match="symbolic link"):
        write_store(tmp_path / "out.zarr", overwrite=overwrite)
    assert listing(elsewhere) == ["zarr.json"]
    assert (elsewhere / "zarr.json").read_text() == "precious"


def test_links_in_the_folders_above_are_followed(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    write_file(tmp_path / "linked" / "out.bin")
    assert (tmp_path / "real" / "out.bin").read_bytes() == b"new"


def test_an_existing_file_is_replaced_only_when_asked(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_file(path)
    assert path.read_bytes() == b"old"
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    write_file(path, overwrite=True)
    assert path.read_bytes() == b"new"
    # A rename replaces the name, not the file: what mapped the old file still reads it.
    assert mapped[:] == b"old"
    mapped.close()
    assert listing(tmp_path) == ["out.bin"]


def test_overwrite_replaces_a_store_but_nothing_else(tmp_path):
    write_store(tmp_path / "out.zarr")
    (tmp_path / "out.zarr" / "stale").write_text("from the first store")
    write_store(tmp_path / "out.zarr", overwrite=True)
    assert listing(tmp_path / "out.zarr") == ["c", "zarr.json"]
    assert listing(tmp_path) == ["out.zarr"]  # the old store is gone, not set aside
    (tmp_path / "notes.zarr").mkdir()
    (tmp_path / "notes.zarr" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        write_store(tmp_path / "notes.zarr", overwrite=True)
    (tmp_path / "file.zarr").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        write_store(tmp_path / "file.zarr", overwrite=True)
    with pytest.raises(FileExistsError, match="not a file"):
        write_file(tmp_path / "notes.zarr", overwrite=True)
    assert (tmp_path / "notes.zarr" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "file.zarr").read_text() == "mine"


class Failure(Exception):
    pass


@pytest.mark.parametrize("folder", [False, True], ids=["file", "store"])
def test_a_failure_leaves_nothing_and_goes_on(tmp_path, folder):
    with pytest.raises(Failure, match="in the pass"):
        with OutputFiles() as outputs:
            if folder:
                (outputs.folder(tmp_path / "out.zarr") / "zarr.json").write_text("{}")
            else:
                outputs.file(tmp_path / "out.bin").write(b"half")
            raise Failure("in the pass")
    assert listing(tmp_path) == []


def test_a_full_disk_on_sync_is_the_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(output_files.os, "fsync", full)
    with pytest.raises(OSError, match="No space left") as raised:
        write_file(tmp_path / "out.bin")
    assert raised.value.errno == errno.ENOSPC
    assert listing(tmp_path) == []


def test_a_name_taken_during_the_pass_keeps_both(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(FileExistsError, match="created while the pass ran") as raised:
        with OutputFiles() as outputs:
            outputs.file(path).write(b"finished")
            path.write_bytes(b"someone else's")
    assert path.read_bytes() == b"someone else's"
    [kept] = [name for name in listing(tmp_path) if name != "out.bin"]
    assert kept in str(raised.value)
    assert (tmp_path / kept).read_bytes() == b"finished"


def test_a_link_placed_during_the_pass_is_not_followed(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="symbolic link"):
        with OutputFiles(overwrite=True) as outputs:
            outputs.file(tmp_path / "out.bin").write(b"new")
            (tmp_path / "out.bin").symlink_to(victim)
    assert victim.read_bytes() == b"precious"


@pytest.mark.parametrize(
    "name, error, match",
    [
        ("missing/out.bin", FileNotFoundError, "does not exist"),
        ("..", ValueError, "names no file"),
    ],
    ids=["missing-folder", "no-name"],
)
def test_errors_say_what_was_received(tmp_path, name, error, match):
    with pytest.raises(error, match=match):
        check_output_path(tmp_path / name, overwrite=False)
