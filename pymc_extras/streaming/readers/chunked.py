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
"""Arrays on disk read by row ranges: the part that the .npy, HDF5 and Zarr readers share."""

import math
import os

from collections.abc import Iterator, Sequence

import numpy as np

from pymc.exceptions import SourceDataError, StreamingError
from pymc.streaming.sources import Chunk, OutputSpec, Source, check_max_rows

from pymc_extras.streaming.readers.files import FileStamps, access_error

__all__: list[str] = []  # helpers of the package: imported by name, not exported

PASS_READ_ROWS = 65_536
"""Rows per read in a pass in storage order (:meth:`chunks`), rounded up to the alignment."""

_NUMERIC_KINDS = "biuf"
_LCM_LIMIT = 4  # else align to the largest chunk: the others decode one extra chunk per read


def _check_alignment(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"read_alignment must be an integer, got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"read_alignment must be at least 1, got {value}.")
    return int(value)


def _combined_alignment(chunk_rows: Sequence[int]) -> int:
    largest = max(chunk_rows)
    common = math.lcm(*chunk_rows)
    return common if common <= _LCM_LIMIT * largest else largest


def is_path(obj) -> bool:
    return isinstance(obj, str | os.PathLike)


class ChunkedArraySource(Source):
    """Aligned arrays on disk, read by row ranges: the shared part of the three readers.

    Subclasses call :meth:`_setup` with objects that have a ``shape`` and a ``dtype`` (the
    arrays, or their headers), and read rows in :meth:`_read_rows`.
    """

    random_access = True
    gathers_rows = False

    def _setup(
        self,
        arrays: Sequence,
        labels: Sequence[str],
        chunk_rows: Sequence[int],
        *,
        read_alignment: int | None,
        stamped: Sequence[str],
    ) -> None:
        for array, label in zip(arrays, labels):
            shape, dtype = tuple(array.shape or ()), np.dtype(array.dtype)
            if not shape:
                raise SourceDataError(
                    f"{label} is 0-dimensional (shape {shape}); every output needs a leading "
                    "axis of rows, shape (rows, ...)."
                )
            if dtype.kind not in _NUMERIC_KINDS:
                raise SourceDataError(
                    f"{label} has dtype {dtype}, which is not numeric. Store numbers (e.g. "
                    "category codes or dummy columns) to stream it."
                )
        rows = [array.shape[0] for array in arrays]
        if len(set(rows)) > 1:
            counts = ", ".join(f"{label}: {n:,}" for label, n in zip(labels, rows))
            raise SourceDataError(
                f"Aligned outputs have different numbers of rows ({counts}). Every output "
                "must have one row per observation."
            )
        if rows[0] == 0:
            raise SourceDataError(f"{labels[0]} has no rows.")
        check_max_rows(int(rows[0]), labels[0])
        self._arrays = tuple(arrays)
        self._labels = tuple(labels)
        self._alignment_given = read_alignment
        self.num_rows = int(rows[0])
        # In the machine's byte order, which PyTensor needs: reads are converted.
        self.specs = tuple(
            OutputSpec(np.dtype(array.dtype).newbyteorder("="), tuple(array.shape[1:]))
            for array in arrays
        )
        self.read_alignment = (
            _combined_alignment(chunk_rows)
            if read_alignment is None
            else _check_alignment(read_alignment)
        )
        self._stamps = FileStamps(stamped)

    def _read_rows(self, output: int, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._arrays[output][start:stop])

    def _file_of(self, output: int) -> str | None:
        """The file behind ``output``, to name it when the process may not read it."""
        return None

    def read(self, start: int, stop: int) -> Chunk:
        """Read rows ``start:stop`` of every output (fewer at the end of the data).

        Raises
        ------
        SourceDataError
            If a file changed since the source was opened, or reading fails (a truncated or
            corrupt file), naming the file and the rows; the library's error is the cause.
        PermissionError
            If the process may not read a file.
        """
        start, stop = max(0, int(start)), min(int(stop), self.num_rows)
        parts = []
        for output, label in enumerate(self._labels):
            try:
                part = self._read_rows(output, start, stop)
            except MemoryError:
                raise
            except StreamingError:
                self._stamps.check()  # a file cut short by a change is named as changed
                raise
            except Exception as error:
                clear = access_error(error, self._file_of(output) or label)
                if clear is not None:
                    raise clear from error
                self._stamps.check()  # a file changed under the read is not corrupt
                raise SourceDataError(
                    f"Reading rows {start:,}:{stop:,} of {label} failed: "
                    f"{type(error).__name__}: {error}. The file may be truncated or corrupt."
                ) from error
            if len(part) != stop - start:
                raise SourceDataError(
                    f"{label} gave {len(part):,} rows for rows {start:,}:{stop:,}, but had "
                    f"{self.num_rows:,} rows when the source was opened. The data changed while "
                    "it was being streamed."
                )
            if not part.dtype.isnative:
                part = part.astype(part.dtype.newbyteorder("="))
            parts.append(part)
        # Checked after the read, not before: rows read from a file that changed before or
        # during the read (in place, so the lengths agree) are never returned, and one stat per
        # read is all it costs.
        self._stamps.check()
        return tuple(parts)

    def chunks(self) -> Iterator[Chunk]:
        step = -(-PASS_READ_ROWS // self.read_alignment) * self.read_alignment
        for start in range(0, self.num_rows, step):
            yield self.read(start, start + step)

    def head(self, rows: int) -> Chunk:
        return self.read(0, rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._labels)})"
