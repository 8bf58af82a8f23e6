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
"""Source adapters: turn what a user has into aligned chunks of rows, one array per output."""

import functools
import importlib.metadata
import itertools
import os

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import cast

import numpy as np
import pandas as pd

from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming.chunks import (
    _NUMERIC_KINDS,
    MAX_ROWS,
    Chunk,
    OutputSpec,
    _conform,
    _is_arrow,
    _native,
    _spec_of,
    _to_array,
    check_max_rows,
    to_chunk,
)

__all__ = [
    "MAX_ROWS",
    "ArraySource",
    "BlockSource",
    "Chunk",
    "IterableSource",
    "OutputSpec",
    "Source",
    "ZippedSource",
    "as_source",
    "check_max_rows",
    "register_source",
    "to_chunk",
]

_HEAD_ROWS = 4_096


def _row_count(value, what: str) -> int:
    """A number of rows: a positive integer (numpy integers too, never a bool), at most 2**53."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise SourceDataError(f"{what} must be an integer number of rows, got {value!r}.")
    if value < 1:
        raise SourceDataError(f"{what} must be at least 1 row, got {value}.")
    return check_max_rows(int(value), what)


def _declared_rows(obj) -> int | None:
    """The rows an iterable says it holds: ``num_rows``, or ``n_rows`` as pymc-extras names it."""
    for attribute in ("num_rows", "n_rows"):
        value = getattr(obj, attribute, None)
        if value is not None and not callable(value):
            return _row_count(value, f"{type(obj).__name__}.{attribute}")
    return None


class Source(ABC):
    """A source of aligned chunks and what it knows about itself.

    Adapters for new formats subclass this. The batcher only relies on the attributes below and
    on :meth:`chunks` (and :meth:`read` when ``random_access`` is true).

    Attributes
    ----------
    specs : tuple of OutputSpec
        One per output, fixed for the life of the source.
    num_rows : int or None
        Rows per pass, when the source can tell without reading them all; ``None`` otherwise.
    restartable : bool
        Whether :meth:`chunks` can be called again for a new pass (an epoch).
    random_access : bool
        Whether :meth:`read` serves any range of rows, which lets the batcher read blocks in a
        random order.
    gathers_rows : bool
        Whether :meth:`take` gathers arbitrary rows cheaply (data in memory): the batcher then
        gathers each batch directly instead of materialising shuffle windows.
    read_alignment : int
        For ``random_access`` sources, the rows of one on-disk chunk (HDF5, Zarr): the batcher
        reads blocks that start and end on multiples of it, so no chunk is decoded twice.
    """

    specs: tuple[OutputSpec, ...]
    num_rows: int | None = None
    restartable: bool = True
    random_access: bool = False
    gathers_rows: bool = False
    read_alignment: int = 1

    @abstractmethod
    def chunks(self) -> Iterator[Chunk]:
        """Iterate over one pass of the data, in storage order."""

    def read(self, start: int, stop: int) -> Chunk:
        """Read rows ``start:stop`` (sources with ``random_access`` only)."""
        raise NotImplementedError(f"{self!r} does not allow random access")

    def take(self, rows: np.ndarray) -> Chunk:
        """Gather the given rows (sources with ``gathers_rows`` only)."""
        raise NotImplementedError(f"{self!r} does not gather rows")

    def head(self, rows: int) -> Chunk:
        """Up to ``rows`` rows from the start of the data, without starting a pass."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the files, memory maps and readers the source holds open.

        The source stays usable: a later read opens what it needs again. A stream calls this
        when a fit ends, so a fitted model holds nothing open; ``with source:`` calls it at the
        end of the block. Subclasses that hold resources override it.
        """

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class BlockSource(Source):
    """A source stored in blocks that are read whole (row groups, record batches, partitions).

    The batcher visits the blocks in a random order every epoch (when shuffling) and shuffles
    rows across the blocks that share a shuffle window, so a block larger than the shuffle
    buffer is read, and held in memory, whole.

    Attributes
    ----------
    block_rows : tuple of int
        Rows in each block, in storage order, known without reading the data.
    splits_blocks : bool
        Whether :meth:`iter_block` reads a block in pieces without holding it whole. The batcher
        then reads a block larger than the shuffle buffer one window-sized piece at a time.
    """

    splits_blocks: bool = False
    _block_rows: tuple[int, ...] = ()

    @property
    def block_rows(self) -> tuple[int, ...]:
        return self._block_rows

    @block_rows.setter
    def block_rows(self, rows: Sequence[int]) -> None:
        block_rows = tuple(int(count) for count in rows)
        self.num_rows = check_max_rows(sum(block_rows), f"{type(self).__name__}'s blocks")
        self._block_rows = block_rows

    @abstractmethod
    def read_block(self, index: int) -> Chunk:
        """Read block ``index`` whole, with exactly ``block_rows[index]`` rows."""

    def read_blocks(self, indices: Sequence[int]) -> list[Chunk]:
        """Read several blocks, the batcher's next window; a cluster may compute them at once."""
        return [self.read_block(index) for index in indices]

    def iter_block(self, index: int, rows: int) -> Generator[Chunk]:
        """Block ``index`` in consecutive pieces of ``rows`` rows (the last one shorter)."""
        block = self.read_block(index)
        for start in range(0, len(block[0]), rows):
            yield tuple(part[start : start + rows] for part in block)

    def chunks(self) -> Iterator[Chunk]:
        for index in range(len(self.block_rows)):
            yield self.read_block(index)

    def head(self, rows: int) -> Chunk:
        first = next(i for i, count in enumerate(self.block_rows) if count)
        if self.splits_blocks:
            return next(self.iter_block(first, rows))
        return tuple(part[:rows] for part in self.read_block(first))


class ArraySource(Source):
    """Numpy arrays (including ``np.memmap``): row count known, any block readable at random.

    Reading a block slices the arrays, so a memory-mapped file is read block by block and never
    loaded whole.
    """

    random_access = True

    def __init__(self, arrays: Sequence[np.ndarray], *, read_rows: int = 65_536):
        if not arrays:
            raise SourceDataError("ArraySource needs at least one array.")
        lengths = [len(array) for array in arrays]
        if len(set(lengths)) > 1:
            raise SourceDataError(
                f"Aligned sources have different lengths: {', '.join(map(str, lengths))} rows. "
                "Every output must have one row per observation."
            )
        for array in arrays:
            if np.dtype(array.dtype).kind not in _NUMERIC_KINDS:
                raise SourceDataError(
                    f"ArraySource got an array of dtype {array.dtype}, which is not real numbers "
                    "(complex values would lose their imaginary part). Convert it to numbers "
                    "(e.g. category codes, or the real and imaginary parts as two columns)."
                )
        self.arrays = tuple(arrays)
        self.num_rows = lengths[0]
        self.specs = _spec_of(self.arrays)
        self._read_rows = read_rows
        # A memmap is better read block by block, in order, than gathered row by row.
        self.gathers_rows = not any(isinstance(array, np.memmap) for array in self.arrays)

    def chunks(self) -> Iterator[Chunk]:
        for start in range(0, len(self.arrays[0]), self._read_rows):
            yield self.read(start, start + self._read_rows)

    def read(self, start: int, stop: int) -> Chunk:
        return tuple(_native(np.asarray(array[start:stop])) for array in self.arrays)

    def take(self, rows: np.ndarray) -> Chunk:
        return tuple(_native(np.take(array, rows, axis=0)) for array in self.arrays)

    def head(self, rows: int) -> Chunk:
        return self.read(0, rows)

    def __repr__(self) -> str:
        kinds = ", ".join(f"{type(a).__name__}{a.shape}" for a in self.arrays)
        return f"ArraySource({kinds})"


class IterableSource(Source):
    """Chunks from a re-iterable, a zero-argument factory, or a one-shot iterator.

    Parameters
    ----------
    obj : iterable, callable or iterator
        A re-iterable (list, custom class with ``__iter__``) and a factory returning a fresh
        iterator restart every epoch; an iterator or generator object is read once.
    num_rows : int, optional
        Rows per pass, when known. Lists and tuples of chunks are counted; an object with an
        integer ``num_rows`` or ``n_rows`` attribute (pymc-extras' convention) reports its own.
        ``len()`` is never used, because it often counts batches rather than rows.
    """

    def __init__(self, obj, *, num_rows: int | None = None):
        self._obj = obj
        if isinstance(obj, Iterator):
            self.restartable = False
            self._describe = f"one-shot iterator {type(obj).__name__}"
        elif isinstance(obj, Iterable):
            self._describe = f"re-iterable {type(obj).__name__}"
        else:
            self._describe = f"factory {getattr(obj, '__name__', type(obj).__name__)}()"
        self._passes = 0
        # The first pass is opened now, to learn the outputs; its first chunk is kept for it.
        self._first_pass: Iterator | None = self._open()
        first = next((chunk for chunk in self._first_pass if len(chunk[0])), None)
        if first is None:
            raise SourceDataError(f"The source ({self._describe}) yielded no rows.")
        self.specs = _spec_of(first)
        self._first_chunk: Chunk | None = first
        # A few rows kept for head(), not the whole first chunk, which may be large.
        self._head = tuple(np.array(part[:_HEAD_ROWS]) for part in first)
        if num_rows is None and isinstance(obj, list | tuple):
            num_rows = sum(len(to_chunk(chunk)[0]) for chunk in obj)
        if num_rows is None:
            num_rows = _declared_rows(obj)
        self.num_rows = None if num_rows is None else _row_count(num_rows, "num_rows")

    def _open(self) -> Iterator[Chunk]:
        if not self.restartable and self._passes:
            raise SourceDataError(
                f"The source ({self._describe}) is a one-shot iterator and has been read to its "
                "end. Pass a list, a re-iterable or a zero-argument function returning a fresh "
                "iterator to read it again."
            )
        self._passes += 1
        obj = self._obj
        if isinstance(obj, Iterator):
            raw = obj
        elif isinstance(obj, Iterable):
            raw = iter(obj)
        else:
            raw = obj()
            if not isinstance(raw, Iterable):
                raise InvalidSourceError(
                    f"The source factory {self._describe} returned {type(raw).__name__}; it must "
                    "return an iterator of chunks."
                )
            raw = iter(raw)
        return (to_chunk(chunk, f"chunk {i} of {self._describe}") for i, chunk in enumerate(raw))

    def chunks(self) -> Iterator[Chunk]:
        if self._first_pass is not None and self._first_chunk is not None:
            rest, self._first_pass = self._first_pass, None
            first, self._first_chunk = self._first_chunk, None
            return self._checked(itertools.chain([first], rest))
        return self._checked(self._open())

    def _checked(self, chunks: Iterator[Chunk]) -> Iterator[Chunk]:
        for i, chunk in enumerate(chunks):
            if len(chunk[0]):
                yield _conform(chunk, self.specs, f"chunk {i} of {self._describe}")

    def head(self, rows: int) -> Chunk:
        return tuple(part[:rows] for part in self._head)

    def close(self) -> None:
        """Let go of the pass opened to learn the outputs; a one-shot iterator is kept."""
        if self.restartable and self._first_pass is not None:
            self._first_pass, self._first_chunk = None, None

    def __repr__(self) -> str:
        return f"IterableSource({self._describe})"


class ZippedSource(Source):
    """Several sources read side by side as one, row for row, whatever their chunkings."""

    def __init__(self, sources: Sequence[Source]):
        self.sources = tuple(sources)
        self.specs = tuple(spec for source in self.sources for spec in source.specs)
        self.restartable = all(source.restartable for source in self.sources)
        counts = [source.num_rows for source in self.sources]
        known = {count for count in counts if count is not None}
        if len(known) > 1:
            raise SourceDataError(
                "Aligned sources have different lengths: "
                f"{', '.join('unknown' if c is None else str(c) for c in counts)} rows. Every "
                "output must have one row per observation."
            )
        self.num_rows = known.pop() if known else None

    def chunks(self) -> Iterator[Chunk]:
        iterators = [source.chunks() for source in self.sources]
        pending: list[Chunk | None] = [None] * len(iterators)
        rows_done = 0
        while True:
            for i, iterator in enumerate(iterators):
                if pending[i] is None:
                    pending[i] = next(iterator, None)
            ended = [chunk is None for chunk in pending]
            if all(ended):
                return
            if any(ended):
                raise SourceDataError(
                    f"Aligned sources have different lengths: source(s) "
                    f"{[i for i, e in enumerate(ended) if e]} ended after {rows_done} rows while "
                    f"source(s) {[i for i, e in enumerate(ended) if not e]} had more."
                )
            current = cast(list[Chunk], pending)  # none ended
            take = min(len(chunk[0]) for chunk in current)
            out: list[np.ndarray] = []
            for i, chunk in enumerate(current):
                out.extend(part[:take] for part in chunk)
                rest = tuple(part[take:] for part in chunk)
                pending[i] = rest if len(rest[0]) else None
            rows_done += take
            yield tuple(out)

    def head(self, rows: int) -> Chunk:
        heads = [source.head(rows) for source in self.sources]
        take = min(len(head[0]) for head in heads)
        return tuple(part[:take] for head in heads for part in head)

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def __repr__(self) -> str:
        return f"ZippedSource({', '.join(map(repr, self.sources))})"


_PLUGIN_GROUP = "pymc.streaming.sources"
"""Entry points that register adapters for the types of one top-level package: an entry point's
name is that package (``h5py``, ``zarr``, ``dask``, ...), its value a function that registers
them with :func:`register_source` when an object of that package is first met."""


@functools.singledispatch
def _adapter(obj) -> Source:
    raise NotImplementedError  # the marker of "no adapter registered"


_aligning: set[Callable] = set()
_loaded_plugins: set[str] = set()


def register_source(cls: type, adapter: Callable | None = None, *, aligns: bool = False):
    """Register ``adapter(obj) -> Source`` for objects of type ``cls`` given to ``pm.Minibatch``.

    Usable as a decorator. Packages that read other formats register their readers this way,
    lazily, through an entry point in the group ``pymc.streaming.sources`` named after the
    top-level package of the types they read, whose value is a function that calls
    ``register_source``: ``import pymc`` then imports no reader.

    Parameters
    ----------
    cls : type
        The type of objects to adapt (subclasses included).
    adapter : callable, optional
        Builds the :class:`Source`. Omitted, ``register_source`` returns a decorator.
    aligns : bool, default False
        Whether ``adapter(*objs)`` takes several objects of this kind at once and reads them
        aligned row by row (HDF5 datasets, Zarr arrays, Dask collections), which keeps their
        random block order; otherwise several objects are zipped.

    Examples
    --------
    .. code-block:: python

        @register_source(MyTable)
        def _(table):
            return ArraySource([table.to_numpy()])
    """
    if adapter is None:
        return functools.partial(register_source, cls, aligns=aligns)
    _adapter.register(cls, adapter)
    if aligns:
        _aligning.add(adapter)
    return adapter


def _load_plugins(cls: type) -> bool:
    """Import the modules that registered adapters for the packages ``cls`` comes from."""
    loaded = False
    for klass in cls.__mro__:
        package = klass.__module__.split(".")[0]
        if package in _loaded_plugins:
            continue
        _loaded_plugins.add(package)
        for entry_point in importlib.metadata.entry_points(group=_PLUGIN_GROUP, name=package):
            entry_point.load()()
            loaded = True
    return loaded


def _adapter_for(obj) -> Callable | None:
    """The adapter registered for ``obj``'s type, loading the plugins of its package once."""
    adapter = _adapter.dispatch(type(obj))
    if adapter is _adapter.dispatch(object) and _load_plugins(type(obj)):
        adapter = _adapter.dispatch(type(obj))
    return None if adapter is _adapter.dispatch(object) else adapter


@register_source(Source)
def _source_itself(source: Source) -> Source:
    return source


@register_source(np.ndarray)
@register_source(pd.DataFrame)
@register_source(pd.Series)
def _array_source(array) -> Source:
    return ArraySource([_to_array(array, "source")])


def _single_source(obj, position: int) -> Source:
    from pytensor.graph.basic import Variable

    adapter = _adapter_for(obj)
    if adapter is not None:
        return adapter(obj)
    if _is_arrow(obj):
        return ArraySource([_to_array(obj, f"source {position}")])
    if isinstance(obj, Variable):
        raise InvalidSourceError(
            f"Source {position} is a PyTensor variable ({obj}). streaming=True reads batches from "
            "data outside the graph: pass the numpy array, an iterable of chunks or a function "
            "returning one, or use streaming=False for data already in the model."
        )
    if isinstance(obj, str | os.PathLike):
        raise InvalidSourceError(
            f"Source {position} is a path ({obj!r:.80}). Open files with a reader that says "
            "which columns or dataset to stream: pymc_extras.streaming.ParquetSource, "
            "ArrowIPCSource, CSVSource, NpySource, HDF5Source or ZarrSource."
        )
    if isinstance(obj, str | bytes | dict | set) or obj is None or np.isscalar(obj):
        raise InvalidSourceError(
            f"Source {position} is a {type(obj).__name__} ({obj!r:.60}), which streaming=True "
            "cannot read. Pass numpy arrays or memmaps, an iterable of chunks (arrays, tuples of "
            "arrays, DataFrames, Arrow record batches), or a zero-argument function returning "
            "such an iterator."
        )
    if isinstance(obj, Iterable) or callable(obj):
        return IterableSource(obj)
    raise InvalidSourceError(
        f"Source {position} is a {type(obj).__name__}, which is neither an array, an iterable "
        "of chunks nor a function returning one."
    )


def as_source(*objs) -> Source:
    """Adapt one or more user objects to a :class:`Source`.

    Several objects are aligned row by row, and each contributes its outputs in order. Objects
    of one kind whose adapter ``aligns`` (see :func:`register_source`) are read by one source.
    """
    if not objs:
        raise InvalidSourceError("pm.Minibatch(..., streaming=True) needs at least one source.")
    if len(objs) > 1:
        adapters = {_adapter_for(obj) for obj in objs}
        adapter = adapters.pop() if len(adapters) == 1 else None
        if adapter in _aligning:
            # One reader over all of them reads aligned blocks in a random order, unlike a zip.
            return adapter(*objs)
    sources = [_single_source(obj, i) for i, obj in enumerate(objs)]
    if len(sources) == 1:
        return sources[0]
    arrays = [source for source in sources if type(source) is ArraySource]
    if len(arrays) == len(sources):
        return ArraySource([array for source in arrays for array in source.arrays])
    return ZippedSource(sources)
