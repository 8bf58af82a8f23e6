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
import os

from collections.abc import Iterable, Sequence

from pymc.exceptions import SourceDataError

__all__ = ["FileStamps", "access_error", "find_files", "readable"]

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


class FileStamps:
    """Size and modification time of files, to tell when one changes under a running stream."""

    def __init__(self, paths: Iterable[str]):
        self._stamps = {path: self._stamp(path) for path in dict.fromkeys(paths)}

    @staticmethod
    def _stamp(path: str) -> tuple[int, int]:
        status = os.stat(path)
        return status.st_size, status.st_mtime_ns

    @property
    def paths(self) -> Sequence[str]:
        return list(self._stamps)

    def check(self, path: str | None = None) -> None:
        """Raise if ``path`` (by default every file) changed since the source opened it.

        Raises
        ------
        SourceDataError
            If a file was removed or changed: rows already read would no longer match it.
        """
        paths = self._stamps if path is None else (path,)
        for name in paths:
            size, mtime = self._stamps[name]
            try:
                now = self._stamp(name)
            except FileNotFoundError as error:
                raise SourceDataError(
                    f"{name!r} was removed while it was being streamed. Keep the files of a "
                    "source in place until the fit ends."
                ) from error
            if now != (size, mtime):
                raise SourceDataError(
                    f"{name!r} changed while it was being streamed (size {size:,} → {now[0]:,} "
                    "bytes). Rows already read would no longer match the file; write new data "
                    "to new files, and build the source and the model again on them."
                )
