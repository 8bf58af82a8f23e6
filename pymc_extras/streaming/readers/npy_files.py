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
"""``.npy`` files as a source: the header checked against the file, rows read by plain reads."""

import math
import os

from dataclasses import dataclass

import numpy as np

from pymc.exceptions import InvalidSourceError, SourceDataError

from pymc_extras.streaming.readers.chunked import ChunkedArraySource, is_path
from pymc_extras.streaming.readers.files import access_error

__all__ = ["NpySource"]


@dataclass(frozen=True)
class _Header:
    """What a ``.npy`` header declares, checked against the size of the file."""

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool
    offset: int  # bytes before the data


def _read_header(path: str) -> _Header:
    """Parse and check the header of ``path`` without reading (or mapping) its data.

    Raises
    ------
    FileNotFoundError, PermissionError
        If the file is missing, or the process may not read it.
    SourceDataError
        If the header cannot be parsed, or declares more data than the file holds.
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as file:
            version = fmt.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = fmt.read_array_header_1_0(file)
            elif version == (2, 0):
                shape, fortran, dtype = fmt.read_array_header_2_0(file)
            else:  # 3.0: numpy writes it only for structured arrays, which are not numeric
                raise ValueError(f".npy format {version[0]}.{version[1]} is not supported")
            offset = file.tell()
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError as error:
        raise FileNotFoundError(f"No such .npy file: {path!r}.") from error
    except OSError as error:
        clear = access_error(error, path)
        if clear is not None:
            raise clear from error
        raise SourceDataError(f"{path!r} cannot be read: {error}.") from error
    except Exception as error:  # a corrupt header: numpy raises several kinds
        raise SourceDataError(
            f"{path!r} is not a .npy file, or its header is corrupt ({type(error).__name__}: "
            f"{error}). Streaming needs a complete .npy file of numbers: an object array or an "
            ".npz archive cannot be read either."
        ) from error
    header = _Header(path, tuple(int(n) for n in shape), np.dtype(dtype), bool(fortran), offset)
    data_bytes = math.prod(header.shape) * header.dtype.itemsize
    if size - offset < data_bytes:
        raise SourceDataError(
            f"{path!r} declares an array of shape {header.shape} and dtype {header.dtype}, "
            f"{data_bytes:,} bytes of data, but the file holds {max(0, size - offset):,} after "
            "its header. The file is truncated, or its header is corrupt."
        )
    return header


class NpySource(ChunkedArraySource):
    """Rows of one or more ``.npy`` files, read block by block with ordinary file reads.

    The files are aligned outputs: row ``i`` of every file belongs to observation ``i``
    (e.g. ``X.npy`` and ``y.npy``). Only the header is read when the source is built, and it
    is checked against the size of the file, so a header that declares more rows than the file
    holds is refused before anything is allocated for them. Each read copies its rows into a
    new array with a plain read of the file, which holds no memory map: resident memory stays
    at one block however large the file, no file stays open between reads, and a file cut
    short while it is streamed raises an error rather than crashing the process (as reading a
    memory map past the end of its file does, with ``SIGBUS``). The operating system's file
    cache still serves the next epoch from memory when the file fits.

    Parameters
    ----------
    *paths : str or path-like
        The ``.npy`` files, one per output, all with the same number of rows.
    read_alignment : int, optional
        Rows that reads start and end on. A ``.npy`` file has no chunks, so the default is 1:
        the batcher then reads blocks of ``shuffle_buffer / 16`` rows from anywhere.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    PermissionError
        If the process may not read a file.
    SourceDataError
        If a file is not a complete ``.npy`` file of numbers (truncated, corrupt, an object
        array or an ``.npz`` archive), is 0-dimensional or empty, or the files have different
        numbers of rows; if a file changes on disk while it is streamed (at the next read).

    Examples
    --------
    >>> import tempfile, numpy as np, pymc as pm
    >>> from pymc_extras.streaming import NpySource
    >>> folder = tempfile.mkdtemp()
    >>> np.save(f"{folder}/X.npy", np.random.normal(size=(1_000, 3)))
    >>> np.save(f"{folder}/y.npy", np.random.normal(size=1_000))
    >>> source = NpySource(f"{folder}/X.npy", f"{folder}/y.npy")
    >>> source.num_rows, [spec.row_shape for spec in source.specs]
    (1000, [(3,), ()])
    >>> X_mb, y_mb = pm.Minibatch(source, batch_size=100, streaming=True)
    """

    def __init__(self, *paths: str | os.PathLike, read_alignment: int | None = None):
        if not paths:
            raise InvalidSourceError("NpySource needs at least one path to a .npy file.")
        for path in paths:
            if not is_path(path):
                raise InvalidSourceError(
                    f"NpySource takes paths to .npy files, got {type(path).__name__}. Pass "
                    "arrays in memory or memmaps to pm.Minibatch directly."
                )
        self._paths = tuple(os.fspath(path) for path in paths)
        self._headers = tuple(_read_header(path) for path in self._paths)
        self._setup(
            self._headers,
            [repr(path) for path in self._paths],
            [1] * len(self._headers),
            read_alignment=read_alignment,
            stamped=self._paths,
        )

    def _file_of(self, output: int) -> str:
        return self._paths[output]

    def _read_rows(self, output: int, start: int, stop: int) -> np.ndarray:
        header = self._headers[output]
        rows, row_shape = stop - start, header.shape[1:]
        row_items = math.prod(row_shape)
        itemsize = header.dtype.itemsize
        with open(header.path, "rb", buffering=0) as file:
            if not header.fortran or row_items == 1:
                part = np.empty((rows, *row_shape), header.dtype)
                _read_into(file, part, header.offset + start * row_items * itemsize, header)
                return part
            # Fortran order: each column's rows start:stop are one run of the file.
            columns = np.empty((row_items, rows), header.dtype)
            for j in range(row_items):
                position = header.offset + (j * header.shape[0] + start) * itemsize
                _read_into(file, columns[j], position, header)
        return np.ascontiguousarray(columns.T.reshape((rows, *row_shape), order="F"))

    def __reduce__(self):
        # A copy reads the headers again, and notices the files' changes from then on.
        return _reopen_npy, (self._paths, self._alignment_given)


def _read_into(file, out: np.ndarray, position: int, header: _Header) -> None:
    """Fill ``out`` with the bytes of ``file`` from ``position``; a short read is an error."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    file.seek(position)
    done = 0
    while done < len(view):
        count = file.readinto(view[done:])
        if not count:
            raise SourceDataError(
                f"{header.path!r} ended after {position + done:,} bytes, where its header "
                f"declares {header.offset + math.prod(header.shape) * header.dtype.itemsize:,}: "
                "the file was cut short while it was being streamed."
            )
        done += count


def _reopen_npy(paths: tuple[str, ...], read_alignment: int | None) -> NpySource:
    return NpySource(*paths, read_alignment=read_alignment)
