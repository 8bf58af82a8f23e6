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
"""Outputs of a pass written where the user said, and whole or not at all."""

import contextlib
import os
import secrets
import shutil
import stat

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__: list[str] = []  # helpers of the package: imported by name, not exported

# Flags of a new temporary file: created here and nowhere else (O_EXCL), never through a link
# (O_NOFOLLOW, where the system has it), readable so that a memory map can be made from it.
_NEW_FILE = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
"""Files at the top of a Zarr store (format 3, or 2): what ``overwrite=True`` may replace."""


def check_output_path(path, *, overwrite: bool, folder: bool = False) -> Path:
    """Where an output named ``path`` goes: its folder resolved, and its own name never a link.

    Links in the folders above are followed, as for any path the user names; a link at the name
    itself is refused, dangling or not, so that nothing is written through it to its target.

    Parameters
    ----------
    path : str or Path
        The output.
    overwrite : bool
        Whether an existing output may be replaced.
    folder : bool, default False
        Whether the output is a folder (a Zarr store) rather than a file.

    Returns
    -------
    Path
        The output's path, its folder resolved.

    Raises
    ------
    FileNotFoundError
        If the folder to write in does not exist.
    FileExistsError
        If ``path`` is a symbolic link; if it exists and ``overwrite`` is False; or if it is
        something the output may not replace (a folder where a file goes, anything but a Zarr
        store where a store goes).
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"{str(path)!r} names no file: give the output's own name.")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"The folder {str(parent)!r} does not exist.")
    final = parent.resolve() / path.name
    try:
        status = os.lstat(final)
    except FileNotFoundError:
        return final
    if stat.S_ISLNK(status.st_mode):
        raise FileExistsError(
            f"{str(path)!r} is a symbolic link (to {os.readlink(final)!r}). Outputs are never "
            "written through a link: name the file itself, or remove the link."
        )
    if not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True to replace it.")
    if folder and not (stat.S_ISDIR(status.st_mode) and _is_zarr_store(final)):
        raise FileExistsError(
            f"{str(path)!r} exists and is not a Zarr store; overwrite=True replaces only a store "
            "that an earlier output wrote. Remove it yourself, or name another path."
        )
    if not folder and not stat.S_ISREG(status.st_mode):
        raise FileExistsError(
            f"{str(path)!r} exists and is not a file; overwrite=True replaces only a file. "
            "Remove it yourself, or name another path."
        )
    return final


def _is_zarr_store(folder: Path) -> bool:
    return any((folder / marker).is_file() for marker in _ZARR_MARKERS)


@dataclass
class _Pending:
    """An output being written: its final path, and the temporary sibling that holds it."""

    path: Path
    temporary: Path
    file: BinaryIO | None  # None for a folder


class OutputFiles:
    """The outputs of one pass: written beside their paths, moved into place when it succeeds.

    Each output is checked when it is opened (:func:`check_output_path`), before the pass does
    any work, and written under a temporary name in the same folder (``.<name>.<random>.tmp``,
    created exclusively, with the permissions the umask gives new files). When the pass ends
    without an error, :meth:`commit` syncs every output to disk and renames it to its name, so
    that a reader never sees an output half-written; when the pass fails, :meth:`discard`
    removes the temporaries and the original error goes on. Used as a context manager, it does
    one or the other on leaving the block.

    Parameters
    ----------
    overwrite : bool, default False
        Whether existing outputs may be replaced. A replaced file's old contents stay readable
        through memory maps that hold it (a rename replaces the name, not the file).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from pymc_extras.streaming.workflow.output_files import OutputFiles
    >>> folder = Path(tempfile.mkdtemp())
    >>> with OutputFiles() as outputs:
    ...     outputs.file(folder / "out.bin").write(b"all of it")
    9
    >>> (folder / "out.bin").read_bytes(), sorted(p.name for p in folder.iterdir())
    (b'all of it', ['out.bin'])
    """

    def __init__(self, *, overwrite: bool = False):
        self.overwrite = overwrite
        self._pending: list[_Pending] = []

    def file(self, path) -> BinaryIO:
        """A new temporary file, open for reading and writing, that becomes ``path`` on commit."""
        final = check_output_path(path, overwrite=self.overwrite)
        temporary = _temporary(final, "tmp")
        handle = os.fdopen(os.open(temporary, _NEW_FILE, 0o666), "w+b")
        self._pending.append(_Pending(final, temporary, handle))
        return handle

    def folder(self, path) -> Path:
        """A new temporary folder that becomes ``path`` (a Zarr store) on commit."""
        final = check_output_path(path, overwrite=self.overwrite, folder=True)
        temporary = _temporary(final, "tmp")
        temporary.mkdir(0o777)
        self._pending.append(_Pending(final, temporary, None))
        return temporary

    def commit(self) -> None:
        """Sync every output to disk and move it to its name.

        Raises
        ------
        FileExistsError
            If something took an output's name during the pass (a link, or a file without
            ``overwrite``). The finished outputs are then kept under their temporary names,
            which the message gives.
        """
        for pending in self._pending:
            if pending.file is not None:
                pending.file.flush()
                os.fsync(pending.file.fileno())
                pending.file.close()
            else:
                _sync_tree(pending.temporary)
        try:
            for pending in self._pending:
                check_output_path(
                    pending.path, overwrite=self.overwrite, folder=pending.file is None
                )
            for pending in self._pending:
                _place(pending, self.overwrite)
        except FileExistsError as error:
            kept = [str(p.temporary) for p in self._pending if os.path.lexists(p.temporary)]
            self._pending = []
            raise FileExistsError(
                f"{error} It was created while the pass ran; the finished output is kept as "
                f"{kept}: rename it yourself."
            ) from error
        for parent in {pending.path.parent for pending in self._pending}:
            _sync_folder(parent)
        self._pending = []

    def discard(self) -> None:
        """Close and remove every temporary; never raises, so the pass's own error goes on."""
        for pending in self._pending:
            if pending.file is not None:
                # Closing flushes what is buffered, which fails again on a full disk.
                with contextlib.suppress(OSError):
                    pending.file.close()
                with contextlib.suppress(FileNotFoundError):
                    pending.temporary.unlink()
            else:
                shutil.rmtree(pending.temporary, ignore_errors=True)
        self._pending = []

    def __enter__(self) -> "OutputFiles":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.discard()
            return
        try:
            self.commit()
        except BaseException:
            self.discard()
            raise


def _temporary(final: Path, kind: str) -> Path:
    # The name is cut so that the temporary's stays within the usual 255 bytes of a name.
    return final.with_name(f".{final.name[:200]}.{secrets.token_hex(6)}.{kind}")


def _place(pending: _Pending, overwrite: bool) -> None:
    """Rename a finished temporary to its name: atomically for a file, replacing only if asked."""
    temporary, final = pending.temporary, pending.path
    if pending.file is not None:
        if overwrite:
            os.replace(temporary, final)  # replaces the name only: a link is never followed
            return
        try:
            os.link(temporary, final)  # fails if anything took the name, even a link
        except FileExistsError:
            raise FileExistsError(f"{str(final)!r} exists.") from None
        except OSError:  # a file system without hard links: check, then rename
            if os.path.lexists(final):
                raise FileExistsError(f"{str(final)!r} exists.") from None
            os.rename(temporary, final)
            return
        temporary.unlink()
        return
    if not os.path.lexists(final):
        # A rename onto an existing file or non-empty folder fails: nothing can be lost here.
        os.rename(temporary, final)
        return
    aside = _temporary(final, "old")
    os.rename(final, aside)
    try:
        os.rename(temporary, final)
    except BaseException:
        os.rename(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    """Sync every file and folder of a tree that was just written (links are not followed)."""
    for root, _, names in os.walk(folder):
        for name in names:
            descriptor = os.open(
                os.path.join(root, name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
            )
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _sync_folder(Path(root))


def _sync_folder(folder: Path) -> None:
    """Sync a folder's entries, so that a rename in it survives a crash."""
    # Not every system can open or sync a folder (Windows, some network file systems); there
    # the files themselves were synced, and the rename is as durable as the system makes it.
    with contextlib.suppress(OSError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
