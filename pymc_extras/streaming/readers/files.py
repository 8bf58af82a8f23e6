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
"""Files under the readers: finding them, noticing changes, and saying why one cannot be read."""

import errno
import hashlib
import os

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymc.exceptions import SourceDataError

__all__: list[str] = []  # helpers of the package: imported by name, not exported

IGNORED_PREFIXES = (".", "_")
"""Files and folders of a dataset directory that are not data, as pyarrow skips them
(``_SUCCESS``, ``_metadata``, ``.crc`` files, hidden folders)."""

_OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE}


def access_error(error: BaseException, path: str) -> OSError | None:
    """A clear error for a file the process may not open, or ``None`` for other failures.

    Libraries report a permission denied or the open-file limit in their own words, which the
    readers would otherwise pass on as a truncated or corrupt file.
    """
    if not isinstance(error, OSError):
        return None
    code = error.errno
    if isinstance(error, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return PermissionError(
            errno.EACCES,
            f"Permission denied: this process may not read {path!r}. Give it read access to "
            "the file (and to its folders), or copy the data somewhere it can read",
            path,
        )
    if code in _OUT_OF_DESCRIPTORS:
        return OSError(
            code,
            f"Too many open files: opening {path!r} failed because the process has reached its "
            "limit of open files. Close files you no longer need, or raise the limit "
            "(ulimit -n, resource.setrlimit(resource.RLIMIT_NOFILE, ...))",
            path,
        )
    return None


def readable(path: str) -> None:
    """Raise ``FileNotFoundError`` or a clear ``PermissionError`` if ``path`` cannot be read.

    Opening the file, not ``os.access``: that answers for the real user, not the process.
    """
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        return
    except OSError as error:
        clear = access_error(error, path)
        if clear is None:
            raise
        raise clear from error


def find_files(directory: str, suffix: str | tuple[str, ...] | None = None) -> list[str]:
    """The data files under ``directory``, recursively, each once, in sorted order.

    Symbolic links to folders are followed, but a folder reached again (a link to a folder
    that holds it, or two links to one folder) is not read again, and a file reached by two
    paths is listed once: a symlink loop would otherwise list the same files many times over.
    Names starting with ``.`` or ``_`` are skipped, as pyarrow's datasets skip them.

    Parameters
    ----------
    directory : str
        The folder to search.
    suffix : str or tuple of str, optional
        Keep only files whose names end so; all files by default.
    """
    seen_folders: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    found: list[str] = []
    pending = [directory]
    while pending:
        folder = pending.pop()
        try:
            status = os.stat(folder)
        except OSError as error:
            _raise_access(error, folder)
            continue  # a dangling link
        key = (status.st_dev, status.st_ino)
        if key in seen_folders:
            continue
        seen_folders.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            _raise_access(error, folder)
            raise
        for entry in entries:
            if entry.name.startswith(IGNORED_PREFIXES):
                continue
            try:
                is_folder = entry.is_dir()  # follows links
                target = entry.stat()
            except OSError as error:
                _raise_access(error, entry.path)
                continue  # a dangling link
            if is_folder:
                pending.append(entry.path)
            elif suffix is None or entry.name.endswith(suffix):
                file_key = (target.st_dev, target.st_ino)
                if file_key not in seen_files:
                    seen_files.add(file_key)
                    found.append(entry.path)
    return sorted(found)


def _raise_access(error: OSError, path: str) -> None:
    clear = access_error(error, path)
    if clear is not None:
        raise clear from error


FINGERPRINT_BYTES = 1 << 16
"""Bytes read from each end of a file to tell a rewritten copy from the original when its
size and modification time were kept (64 KiB: one read of each end, and the footer)."""

_FOOTERS = {"parquet": (b"PAR1", 8), "arrow": (b"ARROW1", 10)}
"""Per format: the magic bytes that end a file, and the size of its tail, which is the
little-endian int32 length of the footer before the magic."""

_REGIONS = {
    "parquet": "footer (its row counts, offsets and column statistics)",
    "arrow": "first 64 KiB and footer (its schema and record batch offsets)",
    None: "first and last 64 KiB",
}


@dataclass(frozen=True)
class _Stamp:
    device: int
    inode: int
    size: int
    mtime: int
    ctime: int
    digest: bytes


def _footer_bytes(file, size: int, layout: str) -> int | None:
    """The length of the footer that ends the file, with its length and magic; None if none."""
    magic, tail = _FOOTERS[layout]
    if size < 2 * tail:
        return None
    file.seek(size - tail)
    end = file.read(tail)
    length = int.from_bytes(end[:4], "little", signed=True)
    if not end.endswith(magic) or not 0 <= length <= size - 2 * tail:
        return None  # not a footer: a corrupt file, which its reader reports
    return length + tail


def _metadata_digest(path: str, size: int, layout: str | None) -> bytes:
    """A digest of the bytes of ``path`` that change when its data does, read cheaply.

    A Parquet file: its footer, which pyarrow has just read (every column chunk's offsets,
    sizes and statistics). An Arrow IPC file: its first :data:`FINGERPRINT_BYTES` and its
    footer (its footer holds no statistics). Other files: their first and last
    :data:`FINGERPRINT_BYTES` (a header: .npy, HDF5's superblock, CSV's first rows; and the
    last rows).
    """
    head = min(size, FINGERPRINT_BYTES)
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as file:
        footer = _footer_bytes(file, size, layout) if layout in _FOOTERS else None
        if footer is None:
            regions = [(0, head), (size - head, size)]
        elif layout == "parquet":
            regions = [(size - footer, size)]
        else:
            regions = [(0, head), (size - max(head, footer), size)]
        for start, stop in regions:
            file.seek(start)
            while start < stop:
                piece = file.read(min(stop - start, 1 << 20))
                if not piece:
                    break
                digest.update(piece)
                start += len(piece)
    return digest.digest()


class FileStamps:
    """What the readers know of their files, to tell when one changes under a running stream.

    One mechanism for every file reader. For each file it keeps its identity (device and
    inode), size, modification and status-change times, and a digest of the bytes that tell
    its content cheaply: the footer of a Parquet file (``layout="parquet"``: every column
    chunk's offsets, sizes and statistics), the first 64 KiB and the footer of an Arrow IPC
    file (``layout="arrow"``), the first and last 64 KiB of others. :meth:`check` costs one
    ``stat``: a file whose size or modification time differ changed. One whose inode or
    status-change time differ (rewritten in place or replaced, with its size and modification
    time set back) is digested again, and changed if those bytes differ; otherwise (a
    ``chmod``, a hard link, an identical copy) it is the same file, and the stamp is renewed.
    A rewrite that keeps the size, the modification time and every digested byte is not seen.

    Parameters
    ----------
    paths : iterable of str
        The files, each stamped when the source opens it.
    layout : {"parquet", "arrow"}, optional
        Where the files keep their metadata; by default their first and last bytes.
    """

    def __init__(self, paths: Iterable[str], *, layout: str | None = None):
        self._layout = layout
        self._stamps: dict[str, _Stamp] = {}
        for path in paths:
            self.add(path)

    def add(self, path: str) -> None:
        """Stamp ``path`` as it is now, before its metadata is read (if not stamped yet)."""
        if path not in self._stamps:
            self._stamps[path] = self._stamp(path)

    def _stamp(self, path: str, digest: bytes | None = None) -> _Stamp:
        status = os.stat(path)
        if digest is None:
            digest = _metadata_digest(path, status.st_size, self._layout)
        return _Stamp(
            status.st_dev,
            status.st_ino,
            status.st_size,
            status.st_mtime_ns,
            status.st_ctime_ns,
            digest,
        )

    @property
    def paths(self) -> Sequence[str]:
        return list(self._stamps)

    def check(self, path: str | None = None) -> None:
        """Raise if ``path`` (by default every file) changed since the source opened it.

        Raises
        ------
        SourceDataError
            If a file was removed, changed, or replaced by another: rows already read would no
            longer match it. The message names the file.
        """
        paths = self._stamps if path is None else (path,)
        for name in paths:
            stamp = self._stamps[name]
            try:
                status = os.stat(name)
            except FileNotFoundError as error:
                raise SourceDataError(
                    f"{name!r} was removed while it was being streamed. Keep the files of a "
                    "source in place until the fit ends."
                ) from error
            if (status.st_size, status.st_mtime_ns) != (stamp.size, stamp.mtime):
                change = (
                    f"size {stamp.size:,} → {status.st_size:,} bytes"
                    if status.st_size != stamp.size
                    else "written again, its size unchanged"
                )
                raise SourceDataError(
                    f"{name!r} changed while it was being streamed ({change}). {_ADVICE}"
                )
            same = (status.st_dev, status.st_ino, status.st_ctime_ns)
            if same != (stamp.device, stamp.inode, stamp.ctime):
                self._check_content(name, stamp)

    def _check_content(self, name: str, stamp: _Stamp) -> None:
        """A file touched with its size and modification time kept: compare its metadata."""
        try:
            now = self._stamp(name)
        except FileNotFoundError as error:
            raise SourceDataError(
                f"{name!r} was removed while it was being streamed. Keep the files of a "
                "source in place until the fit ends."
            ) from error
        except OSError as error:  # e.g. a chmod that made it unreadable: say so
            _raise_access(error, name)
            raise
        if (now.digest, now.size, now.mtime) != (stamp.digest, stamp.size, stamp.mtime):
            raise SourceDataError(
                f"{name!r} was rewritten or replaced while it was being streamed: its size and "
                f"modification time are as before, but its {_REGIONS[self._layout]} differ. "
                f"{_ADVICE}"
            )
        self._stamps[name] = now


_ADVICE = (
    "Rows already read would no longer match the file; write new data to new files, and "
    "build the source and the model again on them."
)
