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
"""Array files as sources: .npy, HDF5 and Zarr, read in row ranges aligned to their chunks."""

import math
import mmap
import os

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from pymc.exceptions import InvalidSourceError, SourceDataError, StreamingError

from pymc.streaming.sources import Chunk, OutputSpec, Source
from pymc_extras.streaming.optional import import_optional

__all__ = ["HDF5Source", "NpySource", "ZarrSource"]

PASS_READ_ROWS = 65_536
"""Rows per read in a pass in storage order (:meth:`chunks`), rounded up to the alignment."""

_NUMERIC_KINDS = "biuf"
_LCM_LIMIT = 4  # else align to the largest chunk: the others decode one extra chunk per read
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


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


def _is_path(obj) -> bool:
    return isinstance(obj, str | os.PathLike)


class _FileStamps:
    """Size and modification time of files, to tell when one changes under a running stream."""

    def __init__(self, paths: Sequence[str]):
        self._stamps = {path: self._stamp(path) for path in dict.fromkeys(paths)}

    @staticmethod
    def _stamp(path: str) -> tuple[int, int]:
        status = os.stat(path)
        return status.st_size, status.st_mtime_ns

    def check(self) -> None:
        for path, (size, mtime) in self._stamps.items():
            try:
                now_size, now_mtime = self._stamp(path)
            except FileNotFoundError as error:
                raise SourceDataError(
                    f"{path!r} was deleted while it was being streamed. Keep the file in place "
                    "until the fit ends."
                ) from error
            if (now_size, now_mtime) != (size, mtime):
                raise SourceDataError(
                    f"{path!r} changed while it was being streamed: it was {size:,} bytes when "
                    f"the source was opened and is {now_size:,} bytes, modified since. Reading "
                    "on would mix old and new data; build the source and the model again on "
                    "the new file."
                )


class _ChunkedArraySource(Source):
    """Aligned arrays on disk, read by row ranges: the shared part of the three readers."""

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
        self._arrays = tuple(arrays)
        self._labels = tuple(labels)
        self._alignment_given = read_alignment
        self.num_rows = int(rows[0])
        self.specs = tuple(
            OutputSpec(np.dtype(array.dtype), tuple(array.shape[1:])) for array in arrays
        )
        self.read_alignment = (
            _combined_alignment(chunk_rows)
            if read_alignment is None
            else _check_alignment(read_alignment)
        )
        self._stamps = _FileStamps(stamped)

    def _read_rows(self, output: int, start: int, stop: int) -> np.ndarray:
        return np.asarray(self._arrays[output][start:stop])

    def read(self, start: int, stop: int) -> Chunk:
        """Read rows ``start:stop`` of every output (fewer at the end of the data).

        Raises
        ------
        SourceDataError
            If a file changed since the source was opened, or reading fails (a truncated or
            corrupt file), naming the file and the rows; the library's error is the cause.
        """
        start, stop = max(0, int(start)), min(int(stop), self.num_rows)
        self._stamps.check()
        parts = []
        for output, label in enumerate(self._labels):
            try:
                part = self._read_rows(output, start, stop)
            except (MemoryError, StreamingError):
                raise
            except Exception as error:
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
            parts.append(part)
        return tuple(parts)

    def chunks(self) -> Iterator[Chunk]:
        step = -(-PASS_READ_ROWS // self.read_alignment) * self.read_alignment
        for start in range(0, self.num_rows, step):
            yield self.read(start, start + step)

    def head(self, rows: int) -> Chunk:
        return self.read(0, rows)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._labels)})"


class NpySource(_ChunkedArraySource):
    """Rows of one or more ``.npy`` files, memory-mapped and read block by block.

    The files are aligned outputs: row ``i`` of every file belongs to observation ``i``
    (e.g. ``X.npy`` and ``y.npy``). Only the header is read when the source is built; each read
    copies its rows out of the memory map and then drops the mapped pages from the process
    (``madvise(MADV_DONTNEED)`` where the system has it), so the resident memory of a pass
    stays at one block instead of growing to the size of the file. The pages stay in the
    operating system's file cache, so the next epoch reads from memory when the file fits.

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
    SourceDataError
        If a file is not a complete ``.npy`` file of numbers (truncated, corrupt, an object
        array or an ``.npz`` archive), is 0-dimensional or empty, or the files have different
        numbers of rows; if a file changes on disk while it is streamed (at the next read).

    Examples
    --------
    >>> import tempfile, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.array_files import NpySource
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
            if not _is_path(path):
                raise InvalidSourceError(
                    f"NpySource takes paths to .npy files, got {type(path).__name__}. Pass "
                    "arrays in memory or memmaps to pm.Minibatch directly."
                )
        self._paths = tuple(os.fspath(path) for path in paths)
        opened = [self._open(path) for path in self._paths]
        self._maps = tuple(mapped for mapped, _, _ in opened)
        self._offsets = tuple(offset for _, _, offset in opened)
        self._setup(
            [array for _, array, _ in opened],
            [repr(path) for path in self._paths],
            [1] * len(opened),
            read_alignment=read_alignment,
            stamped=self._paths,
        )

    @staticmethod
    def _open(path: str) -> tuple[mmap.mmap, np.ndarray, int]:
        try:
            header = np.lib.format.open_memmap(path, mode="r")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"No such .npy file: {path!r}.") from error
        except (OSError, ValueError) as error:
            raise SourceDataError(
                f"{path!r} cannot be memory-mapped as a .npy file ({error}). Streaming needs a "
                "complete .npy file of numbers: a truncated or corrupt file, an object array "
                "or an .npz archive cannot be read."
            ) from error
        shape, dtype, offset = header.shape, header.dtype, header.offset
        order = "F" if header.ndim > 1 and not header.flags.c_contiguous else "C"
        del header
        # Our own map of the file (numpy's memmap keeps its map private), to release read pages.
        with open(path, "rb") as file:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        array = np.ndarray(shape, dtype, buffer=mapped, offset=offset, order=order)
        return mapped, array, offset

    def _read_rows(self, output: int, start: int, stop: int) -> np.ndarray:
        array = self._arrays[output]
        part = np.array(array[start:stop])
        if _DONTNEED is not None and stop > start:
            mapped = self._maps[output]
            if array.flags.c_contiguous:
                row_bytes = array.itemsize * math.prod(array.shape[1:])
                begin = self._offsets[output] + start * row_bytes
                end = self._offsets[output] + stop * row_bytes
                begin -= begin % mmap.PAGESIZE
                mapped.madvise(_DONTNEED, begin, end - begin)
            else:  # Fortran order: a row range is spread over the file
                mapped.madvise(_DONTNEED)
        return part

    def __reduce__(self):
        # Memory maps do not pickle: a copy maps the files again.
        return _reopen_npy, (self._paths, self._alignment_given)


def _reopen_npy(paths: tuple[str, ...], read_alignment: int | None) -> NpySource:
    return NpySource(*paths, read_alignment=read_alignment)


def _named_members(names, available, get, *, where: str, noun: str, reader: str) -> list:
    """The members ``names`` of a file or group, or its only member when none is named.

    ``get(name)`` returns the member, or a phrase for what is there instead ("not there").
    """
    listing = ", ".join(map(repr, available)) or "none"
    if not names:
        if len(available) != 1:
            raise InvalidSourceError(
                f"Name the {noun}s to stream from {where}, which holds {listing}: e.g. "
                f"{reader}(path, 'X', 'y')."
            )
        names = available
    found = []
    for name in names:
        if not isinstance(name, str):
            raise InvalidSourceError(
                f"{noun.capitalize()}s in {where} are named by strings, got {type(name).__name__}."
            )
        member = get(name)
        if isinstance(member, str):
            raise SourceDataError(
                f"{noun.capitalize()} {name!r} of {where} is {member}. Its {noun}s are: {listing}."
            )
        found.append(member)
    return found


def _datasets_in(h5py, group) -> list[str]:
    names: list[str] = []
    group.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


class HDF5Source(_ChunkedArraySource):
    """Rows of one or more HDF5 datasets (h5py), read in ranges aligned to their chunks.

    Reads start and end on multiples of the datasets' chunk rows (``dataset.chunks[0]``), so
    a compressed chunk is decompressed once per epoch, never once for each block that touches
    it. The file stays open, read-only, for the life of the source; reads from the background
    reader thread are serialised by h5py's own lock. A pickled source opens its files again.

    Parameters
    ----------
    file_or_dataset : str, path-like, h5py.File, h5py.Group or h5py.Dataset
        A path to an HDF5 file, an open file or group, with the datasets named in
        ``datasets``; or a dataset, with more datasets (aligned outputs) in ``datasets``.
    *datasets : str or h5py.Dataset
        With a file or group: the names of the datasets to stream, one per output (paths such
        as ``"features/X"`` reach into groups); they may be left out when the file holds one
        dataset. With a dataset: more datasets, with the same number of rows.
    read_alignment : int, optional
        Rows that reads start and end on: by default the datasets' chunk rows (see
        :class:`ZarrSource` when they differ), 1 for contiguous datasets, which have no chunks
        to decode. A smaller value saves memory on chunks larger than the shuffle buffer, at
        the cost of decompressing them more than once.

    Raises
    ------
    ModuleNotFoundError
        If h5py is not installed.
    FileNotFoundError
        If the file does not exist.
    InvalidSourceError
        If an argument is not a path, a group or a dataset; if no dataset is named and the
        file holds several.
    SourceDataError
        If the file cannot be opened (truncated, corrupt or not HDF5), a named dataset does
        not exist (the message lists those that do), a dataset is not numeric, 0-dimensional
        or empty, or the datasets have different numbers of rows; when reading, if the file
        changed or a chunk cannot be read, naming the file, the dataset and the rows.

    Examples
    --------
    >>> import tempfile, h5py, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.array_files import HDF5Source
    >>> path = f"{tempfile.mkdtemp()}/data.h5"
    >>> with h5py.File(path, "w") as file:
    ...     _ = file.create_dataset("X", data=np.random.normal(size=(1_000, 3)), chunks=(250, 3))
    ...     _ = file.create_dataset("y", data=np.random.normal(size=1_000), chunks=(250,))
    >>> source = HDF5Source(path, "X", "y")
    >>> source.num_rows, source.read_alignment
    (1000, 250)
    >>> X_mb, y_mb = pm.Minibatch(source, batch_size=100, streaming=True)
    """

    def __init__(self, file_or_dataset, *datasets, read_alignment: int | None = None):
        h5py = import_optional("h5py", extra="hdf5", reader="HDF5Source")
        first = file_or_dataset
        if _is_path(first):
            path = os.fspath(first)
            try:
                first = h5py.File(path, "r")
            except FileNotFoundError as error:
                raise FileNotFoundError(f"No such HDF5 file: {path!r}.") from error
            except OSError as error:
                raise SourceDataError(
                    f"{path!r} cannot be opened as an HDF5 file ({error}). It may be truncated, "
                    "corrupt or not an HDF5 file."
                ) from error
        if isinstance(first, h5py.Group):
            found = self._named(h5py, first, datasets)
        elif isinstance(first, h5py.Dataset):
            found = [first]
            for dataset in datasets:
                if not isinstance(dataset, h5py.Dataset):
                    raise InvalidSourceError(
                        f"HDF5Source got a dataset first, so the other outputs must be datasets "
                        f"too, got {type(dataset).__name__} {dataset!r:.60}. To name datasets, "
                        "pass the file first: HDF5Source(path, 'X', 'y')."
                    )
                found.append(dataset)
        else:
            raise InvalidSourceError(
                f"HDF5Source takes a path, an h5py File or Group, or h5py Datasets, got "
                f"{type(first).__name__}."
            )
        self._init_datasets(found, read_alignment)

    def _init_datasets(self, found: Sequence, read_alignment: int | None) -> None:
        for dataset in found:
            if not dataset.id.valid:
                raise SourceDataError(
                    f"The HDF5 dataset {dataset!r} is closed. Keep its file open while "
                    "streaming, or pass the path: HDF5Source(path, name)."
                )
        self._datasets = tuple(found)
        self._files = tuple({id(d.file): d.file for d in found}.values())  # kept open
        filenames = [dataset.file.filename for dataset in found]
        self._setup(
            found,
            [f"dataset {d.name!r} of {name!r}" for d, name in zip(found, filenames)],
            [dataset.chunks[0] if dataset.chunks else 1 for dataset in found],
            read_alignment=read_alignment,
            stamped=[name for name in filenames if os.path.isfile(name)],
        )

    @staticmethod
    def _named(h5py, group, names: Sequence) -> list:
        def get(name):
            obj = group.get(name)
            if isinstance(obj, h5py.Dataset):
                return obj
            return "a group, not a dataset" if obj is not None else "not there"

        where = f"{group.file.filename!r}" + ("" if group.name == "/" else f" group {group.name!r}")
        available = _datasets_in(h5py, group)
        return _named_members(
            names, available, get, where=where, noun="dataset", reader="HDF5Source"
        )

    def __repr__(self) -> str:
        files = {dataset.file.filename for dataset in self._datasets}
        if len(files) == 1:
            names = ", ".join(repr(dataset.name) for dataset in self._datasets)
            return f"HDF5Source({files.pop()!r}, {names})"
        return super().__repr__()

    def __reduce__(self):
        # Open h5py objects do not pickle: a copy opens the files again, read-only.
        where = tuple((d.file.filename, d.name) for d in self._datasets)
        return _reopen_hdf5, (where, self._alignment_given)


def _reopen_hdf5(where: tuple[tuple[str, str], ...], read_alignment: int | None) -> HDF5Source:
    h5py = import_optional("h5py", extra="hdf5", reader="HDF5Source")
    files: dict[str, object] = {}
    found = [files.setdefault(name, h5py.File(name, "r"))[path] for name, path in where]
    source = HDF5Source.__new__(HDF5Source)
    source._init_datasets(found, read_alignment)
    return source


class ZarrSource(_ChunkedArraySource):
    """Rows of one or more Zarr arrays (zarr 3, formats 2 and 3), read aligned to their chunks.

    Reads start and end on multiples of the arrays' chunk rows (``array.chunks[0]``; for a
    sharded array, its inner chunks, which zarr reads from a shard on their own), so every
    chunk is decoded once per epoch. Only metadata is read when the source is built. Zarr
    runs its I/O on its own event loop, so reads from the background reader thread are safe,
    and from cloud storage they overlap the fit.

    Parameters
    ----------
    array_or_path : zarr.Array, zarr.Group, str, path-like or zarr store
        An array, with more arrays (aligned outputs) in ``more``; or a group, with the names of
        its arrays to stream in ``more``. A path or URL (``"data.zarr"``,
        ``"s3://bucket/data.zarr"``) or a store is opened read-only, as an array or a group.
    *more : zarr.Array, str or path-like
        After an array: more arrays, or paths to them. After a group: names of its arrays
        (``"features/X"`` reaches into subgroups), one per output; they may be left out when
        the group holds one array.
    storage_options : dict, optional
        Passed to ``zarr.open`` for URLs of remote stores (fsspec), e.g. credentials.
    read_alignment : int, optional
        Rows that reads start and end on. The default is the arrays' chunk rows: when they
        differ, their least common multiple if it is at most 4 times the largest chunk, else
        the largest chunk. Reads are ``shuffle_buffer / 16`` rows rounded up to it, and the
        batcher holds 16 of them, or one when a chunk is larger: chunks of more rows than the
        shuffle buffer cost one chunk of memory per output. A smaller value saves that memory
        at the cost of decoding chunks more than once.

    Raises
    ------
    ModuleNotFoundError
        If zarr is not installed.
    FileNotFoundError
        If nothing is stored at a path.
    InvalidSourceError
        If an argument is neither an array, a group, a path nor a store; if a group is given
        without array names and holds several arrays, or a path after an array is a group.
    SourceDataError
        If metadata cannot be read, a named array does not exist (the message lists those that
        do), an array is not numeric, 0-dimensional or empty, or the arrays have different
        numbers of rows; when reading, if a local array's metadata changed or a chunk cannot
        be decoded, naming the array and the rows.

    Notes
    -----
    Zarr reads a missing chunk as the array's fill value, without error: it is how zarr
    stores chunks that hold only the fill value. A chunk deleted by mistake cannot be told
    from such a chunk, so it streams as fill values.

    Examples
    --------
    >>> import tempfile, zarr, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.array_files import ZarrSource
    >>> path = f"{tempfile.mkdtemp()}/data.zarr"
    >>> group = zarr.open_group(path, mode="w")
    >>> group.create_array("X", shape=(1_000, 3), chunks=(250, 3), dtype="f8")[:] = 1.0
    >>> group.create_array("y", shape=(1_000,), chunks=(250,), dtype="f8")[:] = 2.0
    >>> source = ZarrSource(path, "X", "y")
    >>> source.num_rows, source.read_alignment
    (1000, 250)
    >>> X_mb, y_mb = pm.Minibatch(source, batch_size=100, streaming=True)
    """

    def __init__(
        self,
        array_or_path,
        *more,
        storage_options: dict | None = None,
        read_alignment: int | None = None,
    ):
        zarr = import_optional("zarr", extra="zarr", reader="ZarrSource")
        first = self._open(zarr, array_or_path, storage_options)
        if isinstance(first, zarr.Group):
            arrays = self._named(zarr, first, more)
        else:
            arrays = [first]
            for obj in more:
                array = self._open(zarr, obj, storage_options)
                if not isinstance(array, zarr.Array):
                    raise InvalidSourceError(
                        f"ZarrSource got an array first, so the other outputs must be arrays, "
                        f"but {obj!r:.80} is a group. Name arrays of a group after the group: "
                        "ZarrSource(group_path, 'X', 'y')."
                    )
                arrays.append(array)
        self._setup(
            arrays,
            [f"Zarr array {str(array.store_path)!r}" for array in arrays],
            [array.chunks[0] if array.ndim else 1 for array in arrays],
            read_alignment=read_alignment,
            stamped=[p for p in (_local_metadata(zarr, a) for a in arrays) if p is not None],
        )

    @staticmethod
    def _open(zarr, obj, storage_options: dict | None):
        if isinstance(obj, zarr.Array | zarr.Group):
            return obj
        if not (_is_path(obj) or isinstance(obj, zarr.abc.store.Store)):
            raise InvalidSourceError(
                f"ZarrSource takes zarr arrays or groups, paths, URLs or stores, got "
                f"{type(obj).__name__} {obj!r:.60}."
            )
        where = os.fspath(obj) if _is_path(obj) else obj
        options = {} if storage_options is None else {"storage_options": storage_options}
        try:
            return zarr.open(where, mode="r", **options)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"No Zarr array or group at {where!r}.") from error
        except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as error:
            raise SourceDataError(
                f"{where!r} cannot be opened as a Zarr array or group ({type(error).__name__}: "
                f"{error}). Its metadata may be corrupt."
            ) from error

    @staticmethod
    def _named(zarr, group, names: Sequence) -> list:
        def get(name):
            try:
                node = group[name]
            except KeyError:
                return "not there"
            return node if isinstance(node, zarr.Array) else "a group, not an array"

        where = f"Zarr group {str(group.store_path)!r}"
        members = group.members(max_depth=None)
        available = sorted(path for path, node in members if isinstance(node, zarr.Array))
        return _named_members(names, available, get, where=where, noun="array", reader="ZarrSource")

    def __repr__(self) -> str:
        return f"ZarrSource({', '.join(repr(str(array.store_path)) for array in self._arrays)})"


def _local_metadata(zarr, array) -> str | None:
    """The metadata file of an array in a local directory store, whose changes we can see."""
    if not isinstance(array.store, zarr.storage.LocalStore):
        return None
    name = "zarr.json" if array.metadata.zarr_format == 3 else ".zarray"
    path = Path(array.store.root, array.path, name)
    return str(path) if path.is_file() else None
