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
"""Array files as sources: HDF5 and Zarr, read in row ranges aligned to their chunks.

``NpySource`` (``.npy`` files) lives in :mod:`pymc_extras.streaming.readers.npy_files` and is named here
too, where it was first defined.
"""

import os
import threading

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pymc.exceptions import InvalidSourceError, SourceDataError, StreamingError

from pymc_extras.streaming.readers.chunked import ChunkedArraySource, is_path
from pymc_extras.streaming.readers.files import access_error, readable
from pymc_extras.streaming.readers.npy_files import NpySource
from pymc_extras.streaming.readers.optional import import_optional

__all__ = ["HDF5Source", "NpySource", "ZarrSource"]

_METADATA_ERRORS = (RuntimeError, ValueError, KeyError, TypeError, AttributeError, IndexError)
"""What h5py and zarr raise on corrupt metadata besides ``OSError`` (a failed object visit, an
undecodable JSON or UTF-8 document, a type they cannot represent)."""


def _corrupt(error: BaseException, where: str) -> Exception:
    """The error for metadata that cannot be read: access refused, or a corrupt file."""
    if isinstance(error, StreamingError | FileNotFoundError):
        return error  # ours, or clear already
    clear = access_error(error, where)
    if clear is not None:
        return clear
    return SourceDataError(
        f"{where!r}: its metadata cannot be read ({type(error).__name__}: {error}). The file "
        "may be truncated or corrupt."
    )


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


class HDF5Source(ChunkedArraySource):
    """Rows of one or more HDF5 datasets (h5py), read in ranges aligned to their chunks.

    Reads start and end on multiples of the datasets' chunk rows (``dataset.chunks[0]``), so
    a compressed chunk is decompressed once per epoch, never once for each block that touches
    it. A file given by its path is opened read-only by the source, and closed by
    :meth:`close` (which a fit calls when it ends; a later read opens it again); files given
    as open h5py objects stay the caller's to close. Reads from the background reader thread
    are serialised by h5py's own lock. A pickled source opens its files again.

    HDF5 checks that a contiguous dataset lies within its file when it opens it; chunks never
    written read as the fill value, as HDF5 defines, and a chunk that cannot be read is an
    error at the read that needs it. Memory does not grow with the rows a dataset declares.

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
    allow_external : bool, default False
        Stream datasets whose data lives in other files: HDF5 external storage (raw data in
        another file), an external link to another HDF5 file, and a virtual dataset that maps
        other files. Off, they are refused, naming the dataset and the files it points to: a
        file given to the source then reads nothing but itself, whoever wrote it.

    Raises
    ------
    ModuleNotFoundError
        If h5py is not installed.
    FileNotFoundError
        If the file does not exist.
    PermissionError
        If the process may not read the file.
    InvalidSourceError
        If an argument is not a path, a group or a dataset; if no dataset is named and the
        file holds several.
    SourceDataError
        If the file cannot be opened or its metadata read (truncated, corrupt or not HDF5), a
        named dataset does not exist (the message lists those that do) or is a link that loops,
        a dataset's data lives in another file (unless ``allow_external``), a dataset is not
        numeric, 0-dimensional or empty, or declares more data than the file holds, or the
        datasets have different numbers of rows; when reading, if the file changed or a chunk
        cannot be read, naming the file, the dataset and the rows.

    Examples
    --------
    >>> import tempfile, h5py, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.readers.array_files import HDF5Source
    >>> path = f"{tempfile.mkdtemp()}/data.h5"
    >>> with h5py.File(path, "w") as file:
    ...     _ = file.create_dataset("X", data=np.random.normal(size=(1_000, 3)), chunks=(250, 3))
    ...     _ = file.create_dataset("y", data=np.random.normal(size=1_000), chunks=(250,))
    >>> source = HDF5Source(path, "X", "y")
    >>> source.num_rows, source.read_alignment
    (1000, 250)
    >>> X_mb, y_mb = pm.Minibatch(source, batch_size=100, streaming=True)
    """

    def __init__(
        self,
        file_or_dataset,
        *datasets,
        read_alignment: int | None = None,
        allow_external: bool = False,
    ):
        h5py = import_optional("h5py", extra="hdf5", reader="HDF5Source")
        self._allow_external = bool(allow_external)
        first = file_or_dataset
        owned = is_path(first)
        if owned:
            path = os.fspath(first)
            first = _open_hdf5(h5py, path)
        try:
            where = first.file.filename
        except Exception:  # not an h5py object, or a closed one
            where = repr(first)
        try:
            if isinstance(first, h5py.Group):
                found = self._named(h5py, first, datasets)
            elif isinstance(first, h5py.Dataset):
                found = [first]
                for dataset in datasets:
                    if not isinstance(dataset, h5py.Dataset):
                        raise InvalidSourceError(
                            f"HDF5Source got a dataset first, so the other outputs must be "
                            f"datasets too, got {type(dataset).__name__} {dataset!r:.60}. To "
                            "name datasets, pass the file first: HDF5Source(path, 'X', 'y')."
                        )
                    found.append(dataset)
            else:
                raise InvalidSourceError(
                    f"HDF5Source takes a path, an h5py File or Group, or h5py Datasets, got "
                    f"{type(first).__name__}."
                )
            self._init_datasets(found, read_alignment, owned=owned)
        except Exception as error:
            if owned:
                first.close()
            clear = _corrupt(error, where)
            if clear is error:
                raise
            raise clear from error
        except BaseException:
            if owned:
                first.close()
            raise

    def _init_datasets(self, found: Sequence, read_alignment: int | None, *, owned: bool) -> None:
        for dataset in found:
            if not dataset.id.valid:
                raise SourceDataError(
                    f"The HDF5 dataset {dataset!r} is closed. Keep its file open while "
                    "streaming, or pass the path: HDF5Source(path, name)."
                )
            if not self._allow_external:
                _check_stored_locally(dataset)
        self._lock = threading.RLock()
        self._owned = owned  # the files were opened here, and are closed here
        self._datasets: tuple | None = tuple(found)
        self._files = tuple({id(d.file): d.file for d in found}.values())
        self._where = tuple((d.file.filename, d.name) for d in found)
        filenames = [name for name, _ in self._where]
        self._setup(
            found,
            [f"dataset {d.name!r} of {name!r}" for d, name in zip(found, filenames)],
            [dataset.chunks[0] if dataset.chunks else 1 for dataset in found],
            read_alignment=read_alignment,
            stamped=[name for name in filenames if os.path.isfile(name)],
        )

    def _open_datasets(self) -> tuple:
        """The datasets, opening the files again if :meth:`close` closed them."""
        with self._lock:
            if self._datasets is None:
                h5py = import_optional("h5py", extra="hdf5", reader="HDF5Source")
                files: dict = {}
                self._datasets = tuple(
                    files.setdefault(name, _open_hdf5(h5py, name))[path]
                    for name, path in self._where
                )
                self._files = tuple(files.values())
                self._arrays = self._datasets
            return self._datasets

    def _file_of(self, output: int) -> str:
        return self._where[output][0]

    def _read_rows(self, output: int, start: int, stop: int) -> np.ndarray:
        with self._lock:  # not closed under a read; h5py serialises reads anyway
            return np.asarray(self._open_datasets()[output][start:stop])

    def close(self) -> None:
        """Close the files this source opened (files given open are the caller's)."""
        if not self._owned:
            return
        with self._lock:
            for file in self._files:
                file.close()
            self._files, self._datasets = (), None

    def _named(self, h5py, group, names: Sequence) -> list:
        def get(name):
            try:
                obj = group.get(name)
            except (RuntimeError, KeyError) as error:
                return (
                    f"a link that HDF5 cannot follow ({error}): soft links that lead to each "
                    "other in a loop, or a link to a file that is not there"
                )
            if isinstance(obj, h5py.Dataset):
                if not self._allow_external and obj.file.filename != group.file.filename:
                    raise SourceDataError(
                        f"Dataset {name!r} of {group.file.filename!r} is reached through an "
                        f"external link: its data is dataset {obj.name!r} of another file, "
                        f"{obj.file.filename!r}. A source reads only the file it is given: "
                        "pass that file instead, or allow_external=True if you trust the file "
                        "to name the files it reads."
                    )
                return obj
            return "a group, not a dataset" if obj is not None else "not there"

        where = f"{group.file.filename!r}" + ("" if group.name == "/" else f" group {group.name!r}")
        available = _datasets_in(h5py, group)
        return _named_members(
            names, available, get, where=where, noun="dataset", reader="HDF5Source"
        )

    def __repr__(self) -> str:
        files = {name for name, _ in self._where}
        if len(files) == 1:
            names = ", ".join(repr(path) for _, path in self._where)
            return f"HDF5Source({files.pop()!r}, {names})"
        return super().__repr__()

    def __reduce__(self):
        # Open h5py objects do not pickle: a copy opens the files again, read-only.
        return _reopen_hdf5, (self._where, self._alignment_given, self._allow_external)


def _check_stored_locally(dataset) -> None:
    """Refuse a dataset whose data lives in other files.

    HDF5 external storage (raw data in another file), or a virtual dataset that maps other
    files; one that maps datasets of its own file (``"."``) reads nothing else.

    Raises
    ------
    SourceDataError
        Naming the dataset and the files its data is in.
    """
    where = f"Dataset {dataset.name!r} of {dataset.file.filename!r}"
    advice = (
        "A source reads only the file it is given: copy the data into the file, or pass "
        "allow_external=True if you trust the file to name the files it reads."
    )
    external = dataset.external
    if external:
        files = ", ".join(repr(name) for name, *_ in external)
        raise SourceDataError(
            f"{where} keeps its data in other files (HDF5 external storage): {files}. {advice}"
        )
    if dataset.is_virtual:
        own = os.path.realpath(dataset.file.filename)
        folder = os.path.dirname(own)
        names = {source.file_name for source in dataset.virtual_sources()}
        mapped = sorted(
            name
            for name in names
            if name != "." and os.path.realpath(os.path.join(folder, name)) != own
        )
        if mapped:
            raise SourceDataError(
                f"{where} is a virtual dataset that maps data of other files: "
                f"{', '.join(map(repr, mapped))}. {advice}"
            )


def _open_hdf5(h5py, path: str):
    try:
        return h5py.File(path, "r")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"No such HDF5 file: {path!r}.") from error
    except OSError as error:
        clear = access_error(error, path)
        if clear is not None:
            raise clear from error
        raise SourceDataError(
            f"{path!r} cannot be opened as an HDF5 file ({error}). It may be truncated, "
            "corrupt or not an HDF5 file."
        ) from error


def _reopen_hdf5(
    where: tuple[tuple[str, str], ...], read_alignment: int | None, allow_external: bool = False
) -> HDF5Source:
    h5py = import_optional("h5py", extra="hdf5", reader="HDF5Source")
    files: dict[str, Any] = {}
    found = [files.setdefault(name, _open_hdf5(h5py, name))[path] for name, path in where]
    source = HDF5Source.__new__(HDF5Source)
    source._allow_external = allow_external
    source._init_datasets(found, read_alignment, owned=True)
    return source


class ZarrSource(ChunkedArraySource):
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
    allow_external : bool, default False
        Follow symbolic links that lead out of a local store's folder. Off, a chunk or
        metadata file that is such a link is refused when it is read, naming it and where it
        points: a store given to the source then reads nothing but itself.

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
        numbers of rows; when reading, if a local array's metadata changed, a chunk cannot
        be decoded, or a file of a local store is a symbolic link out of it (unless
        ``allow_external``), naming the array, the rows or the file.

    Notes
    -----
    Zarr reads a missing chunk as the array's fill value, without error: it is how zarr
    stores chunks that hold only the fill value. A chunk deleted by mistake cannot be told
    from such a chunk, so it streams as fill values.

    Examples
    --------
    >>> import tempfile, zarr, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.readers.array_files import ZarrSource
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
        allow_external: bool = False,
    ):
        zarr = import_optional("zarr", extra="zarr", reader="ZarrSource")
        self._allow_external = bool(allow_external)
        where = os.fspath(array_or_path) if is_path(array_or_path) else repr(array_or_path)
        try:
            first = self._open(zarr, array_or_path, storage_options)
            if isinstance(first, zarr.Group):
                arrays = self._named(zarr, first, more)
            else:
                arrays = [first]
                for obj in more:
                    array = self._open(zarr, obj, storage_options)
                    if not isinstance(array, zarr.Array):
                        raise InvalidSourceError(
                            f"ZarrSource got an array first, so the other outputs must be "
                            f"arrays, but {obj!r:.80} is a group. Name arrays of a group after "
                            "the group: ZarrSource(group_path, 'X', 'y')."
                        )
                    arrays.append(array)
            metadata = [_local_metadata(zarr, array) for array in arrays]
            self._setup(
                arrays,
                [f"Zarr array {str(array.store_path)!r}" for array in arrays],
                [array.chunks[0] if array.ndim else 1 for array in arrays],
                read_alignment=read_alignment,
                stamped=[path for path in metadata if path is not None],
            )
        except Exception as error:
            # Corrupt metadata of a member surfaces as JSON or UTF-8 errors of zarr's parser.
            clear = _corrupt(error, where)
            if clear is error:
                raise
            raise clear from error

    def _open(self, zarr, obj, storage_options: dict | None):
        from pymc_extras.streaming.readers.zarr_store import ConfinedLocalStore, confine

        if isinstance(obj, zarr.Array | zarr.Group):
            return obj if self._allow_external else confine(obj)
        if not (is_path(obj) or isinstance(obj, zarr.abc.store.Store)):
            raise InvalidSourceError(
                f"ZarrSource takes zarr arrays or groups, paths, URLs or stores, got "
                f"{type(obj).__name__} {obj!r:.60}."
            )
        where = os.fspath(obj) if is_path(obj) else obj
        local = isinstance(where, str) and os.path.isdir(where)
        if local:
            # Zarr reads in a thread of its own: a file this process may not read is found
            # here, and named as such.
            for name in ("zarr.json", ".zarray", ".zgroup", ".zattrs"):
                if os.path.exists(os.path.join(where, name)):
                    readable(os.path.join(where, name))
        options = {} if storage_options is None else {"storage_options": storage_options}
        target = where
        if not self._allow_external:
            # Metadata and chunks alike: no file that a link puts outside the store is read.
            if local:
                target, options = ConfinedLocalStore(where), {}
            elif isinstance(where, zarr.storage.LocalStore):
                target = ConfinedLocalStore(where.root)
        try:
            return zarr.open(target, mode="r", **options)
        except FileNotFoundError as error:
            raise FileNotFoundError(f"No Zarr array or group at {where!r}.") from error
        except (OSError, ValueError, KeyError, zarr.errors.BaseZarrError) as error:
            clear = access_error(error, str(where))
            if clear is not None:
                raise clear from error
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
