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
"""Dask arrays and DataFrames as streaming sources: one partition computed per read."""

import dataclasses
import sys

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming.casting import cast_exactly, check_cast
from pymc.streaming.sources import BlockSource, Chunk, OutputSpec

from pymc_extras.streaming.readers.optional import import_optional

__all__ = ["DaskSource"]

_NUMERIC_KINDS = "biuf"
_SHOWN_COLUMNS = 20

Selection = str | list[str] | None
"""Which columns make one output: a name (1-D), a list of names (2-D), or ``None`` for a
Series or an array (the collection itself)."""


def _numpy_dtype(dtype) -> np.dtype | None:
    """The numpy dtype a pandas column converts to, or ``None`` if it has none."""
    if isinstance(dtype, np.dtype):
        return dtype
    # Nullable (Int64, Float64, boolean) and pyarrow-backed dtypes say what they hold.
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    return np.dtype(numpy_dtype) if numpy_dtype is not None else None


def _shorten(names: Sequence) -> str:
    shown = ", ".join(repr(name) for name in list(names)[:_SHOWN_COLUMNS])
    more = len(names) - _SHOWN_COLUMNS
    return f"[{shown}{f', ... ({more} more)' if more > 0 else ''}]"


@dataclass
class _Collection:
    """One Dask collection of the source and how its partitions become outputs."""

    obj: Any
    kind: str  # "array", "frame" or "series"
    selections: list[Selection]
    dtypes: list[np.dtype]
    nullable: set[str]
    label: str

    def piece(self, index: int, rows: int | None = None):
        """The lazy collection of partition ``index`` (its first ``rows`` rows, if given)."""
        if self.kind == "array":
            block = self.obj.blocks[index]
            return block if rows is None else block[:rows]
        return self.obj.partitions[index]

    def outputs(self, result, where: str) -> list[np.ndarray]:
        """The outputs of a computed partition, each in the dtype its metadata declared.

        A partition whose values the declared dtype would change (a ``meta`` of int64 over
        floats, text where it says float64, complex values, int64 above ``2**53`` in a matrix
        with a float column) is refused, naming the column and a value; one that only differs
        in dtype is converted.
        """
        if self.kind == "array":
            array = np.asarray(result)
            return [cast_exactly(array, self.dtypes[0], where, _META_ADVICE)]
        arrays = []
        for selection, dtype in zip(self.selections, self.dtypes):
            names = [selection] if isinstance(selection, str) else selection or [result.name]
            for name in names:
                column = result if selection is None else result[name]
                if name in self.nullable:
                    nulls = int(column.isna().sum())
                    if nulls:
                        raise SourceDataError(
                            f"{where}: column {name!r} has {nulls} null value(s). Streaming "
                            "minibatches need complete numeric data: drop or impute the nulls "
                            "in the Dask collection (e.g. df.dropna() or df.fillna(...))."
                        )
                _check_column(column, name, dtype, where)
            values = result if selection is None else result[selection]
            arrays.append(values.to_numpy(dtype=dtype))
        return arrays


_META_ADVICE = (
    "The collection's metadata (its meta or dtype, e.g. of map_partitions or map_blocks) "
    "must say what its partitions hold: give the right meta, or convert the values with "
    "astype before streaming."
)


def _check_column(column, name, dtype: np.dtype, where: str) -> None:
    """Refuse a computed column whose values ``dtype`` would change; one pass, where it differs.

    The column's dtype is what was computed, which a collection's ``meta`` does not promise.
    """
    own = _numpy_dtype(column.dtype)
    if own is not None and own == dtype:  # not `own == dtype`: np.dtype(None) is float64
        return
    values = column.to_numpy() if own is None else column.to_numpy(dtype=own)
    check_cast(values, dtype, f"{where}: column {name!r}", _META_ADVICE)


@dataclass(frozen=True)
class PartitionReader:
    """Turns the computed partitions of a :class:`DaskSource` into a checked chunk.

    It holds what the source knows of its collections (outputs, dtypes, nullable columns) and
    their partitions' lengths, but no collection: it is sent to a cluster's workers, which
    convert and check a partition where it is computed.
    """

    collections: tuple[_Collection, ...]
    block_rows: tuple[int, ...]

    def chunk(self, index: int, computed: Sequence, *, whole: bool = True) -> Chunk:
        """Partition ``index`` as a chunk, from each collection's computed partition.

        Raises
        ------
        SourceDataError
            If a nullable column holds nulls, or (for a ``whole`` partition) its rows differ
            from those counted when the source was built; the message names the partition.
        """
        chunk: list[np.ndarray] = []
        for collection, result in zip(self.collections, computed):
            where = f"Partition {index} of {collection.label}"
            outputs = collection.outputs(result, where)
            expected = self.block_rows[index]
            if whole and len(outputs[0]) != expected:
                raise SourceDataError(
                    f"{where} has {len(outputs[0])} rows, but {expected} when the source "
                    "was built. The data changed while it was being streamed, or lengths= "
                    "is wrong."
                )
            chunk.extend(outputs)
        return tuple(chunk)


class DaskSource(BlockSource):
    """Dask arrays, DataFrames and Series, read one partition at a time.

    Each read computes one partition (the rows of one chunk along the first axis of an array,
    or one partition of a DataFrame) with the Dask scheduler in use. With a
    ``dask.distributed.Client``, the partition is computed on the cluster and only its result
    travels to the fitting process, so the data never has to fit on this machine. The batcher
    visits the partitions in a random order every epoch and shuffles rows across those that
    share a shuffle window.

    Reads run in the stream's background thread, so the cluster computes the next shuffle
    window's partitions while the model takes gradient steps on the current one. The batcher
    asks for them one after the other, so the cluster works on one partition at a time; that
    keeps up as long as a partition is computed faster than the fit consumes its rows.
    :meth:`read_blocks` computes a whole window's partitions in one call, in parallel on the
    cluster. Nothing is computed further ahead: memory here is the shuffle window, which holds
    at least one whole partition, so keep partitions to a size that fits (Dask's usual
    100 MB is fine).

    Parameters
    ----------
    *collections : dask.array.Array, dask.dataframe.DataFrame or dask.dataframe.Series
        One collection, or several aligned row by row, each giving its outputs in order: an
        array gives one output (rows on its first axis), a Series one 1-D output, and a
        DataFrame one 2-D output of all its columns (or the outputs named by ``columns``).
        Aligned collections must have partitions of the same lengths: this source does not
        rechunk them, because a rechunked partition depends on two partitions of the original
        and would compute each of them twice per epoch.
    columns : sequence of str or list of str, optional
        For a single DataFrame, one entry per output: a column name gives a 1-D output, a list
        of names a 2-D output, e.g. ``columns=[["x1", "x2"], "y"]`` for ``X`` and ``y``. Only
        these columns are computed: Dask pushes the selection into its readers (e.g. Parquet
        reads only those columns).
    lengths : sequence of int, optional
        Rows in each partition, when you know them. Otherwise they are taken from an array's
        chunks without computing anything; a DataFrame rarely knows them, so they are computed
        once here by ``map_partitions(len)``: one pass over the data in which every partition
        is computed where it lives and only its length travels back. An array with unknown
        chunk sizes (after boolean indexing) has them computed the same way.
    scheduler : str or distributed.Client, optional
        Where partitions are computed, as ``dask.compute(..., scheduler=...)`` takes it. By
        default Dask's own choice: the active ``distributed.Client`` when there is one (it is
        looked up from the reading thread, so create it before ``pm.fit``), else local threads.
        A pickled source (with a fitted model) leaves a ``Client`` out, and computes with
        Dask's default where it is loaded.

    Raises
    ------
    InvalidSourceError
        If an argument is not a Dask array, DataFrame or Series, or ``columns`` is given for
        anything but one DataFrame.
    SourceDataError
        If a column is missing (the message lists those there are) or not numeric, an array
        is not numeric, the collections are partitioned differently, or there are no rows.
        When reading: if a nullable column holds nulls (naming the column and partition), or
        a partition has a different number of rows than it had at construction.
    ModuleNotFoundError
        If Dask is not installed, naming the package and the extra that installs it.

    Examples
    --------
    A Dask array, chunked in 2,500-row partitions; the block lengths come from its chunks:

    >>> import dask.array as da
    >>> import pymc as pm
    >>> from pymc_extras.streaming.readers.dask_source import DaskSource
    >>> X = da.random.default_rng(0).normal(size=(10_000, 3), chunks=(2_500, 3))
    >>> y = X @ da.from_array([1.0, -1.0, 0.5]) + 1.0
    >>> source = DaskSource(X, y)
    >>> source.block_rows
    (2500, 2500, 2500, 2500)
    >>> with pm.Model():
    ...     X_mb, y_mb = pm.Minibatch(source, batch_size=100, streaming=True, random_seed=1)
    ...     beta = pm.Normal("beta", 0, 1, shape=3)
    ...     obs = pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    >>> obs.owner.inputs[1].eval()  # total_size, in rows
    array(10000)

    A DataFrame, columns mapped to outputs; its partition lengths are computed once:

    >>> import dask.dataframe as dd, pandas as pd
    >>> frame = pd.DataFrame({"x1": [0.1, 0.2, 0.3], "x2": [1.0, 2.0, 3.0], "y": [0, 1, 1]})
    >>> df = dd.from_pandas(frame, npartitions=2)
    >>> source = DaskSource(df, columns=[["x1", "x2"], "y"])
    >>> [(spec.dtype.name, spec.row_shape) for spec in source.specs]
    [('float64', (2,)), ('int64', ())]

    On a cluster, create the ``Client`` first; ``pm.fit`` then streams from it. A single
    collection can also be given to ``pm.Minibatch`` directly:
    ``pm.Minibatch(X, batch_size=100, streaming=True)``.
    """

    def __init__(
        self,
        *collections,
        columns: Sequence[str | Sequence[str]] | None = None,
        lengths: Sequence[int] | None = None,
        scheduler: Any = None,
    ):
        dask = import_optional("dask", extra="dask", reader="DaskSource")
        if not collections:
            raise InvalidSourceError("DaskSource needs at least one Dask array or DataFrame.")
        self._dask = dask
        self._scheduler = scheduler
        if columns is not None and (
            len(collections) != 1 or _kind(dask, collections[0], 0) != "frame"
        ):
            raise InvalidSourceError(
                "columns= selects outputs from one Dask DataFrame, but DaskSource got "
                f"{', '.join(type(c).__name__ for c in collections)}. Pass a single DataFrame, or "
                "select the columns yourself (df[['x1', 'x2']], df['y'])."
            )
        self._collections = [
            _describe(dask, obj, i, columns if i == 0 else None)
            for i, obj in enumerate(collections)
        ]
        for collection in self._collections:
            if collection.kind == "array" and np.isnan(collection.obj.shape).any():
                collection.obj = self._with_chunk_sizes(collection.obj)
        self.specs = tuple(
            OutputSpec(dtype, row_shape)
            for collection in self._collections
            for dtype, row_shape in zip(collection.dtypes, _row_shapes(collection))
        )
        self.block_rows = self._block_rows(lengths)
        if not self.num_rows:
            raise SourceDataError(f"{self!r} has no rows.")

    def _with_chunk_sizes(self, array):
        """A copy of ``array`` whose unknown chunk sizes are computed (only the sizes travel)."""
        array = array.copy()  # compute_chunk_sizes works in place: the user's array is left be
        if self._scheduler is None:
            return array.compute_chunk_sizes()
        with self._dask.config.set(scheduler=self._scheduler):
            return array.compute_chunk_sizes()

    def _block_rows(self, lengths: Sequence[int] | None) -> tuple[int, ...]:
        """Rows per partition of every collection: known, given, or computed in one pass."""
        if lengths is not None:
            lengths = tuple(int(count) for count in lengths)
            if any(count < 0 for count in lengths):
                raise SourceDataError(f"lengths must be row counts (>= 0), got {lengths}.")
        found: list[tuple[int, ...] | None] = []
        to_compute = []
        for collection in self._collections:
            rows = _known_rows(collection)
            if rows is None and lengths is None:
                to_compute.append(collection)
            found.append(rows if rows is not None else lengths)
        if to_compute:
            counted = self._dask.compute(
                *(_partition_lengths(c) for c in to_compute), scheduler=self._scheduler
            )
            counted = iter(counted)
            found = [
                rows if rows is not None else tuple(int(n) for n in next(counted)) for rows in found
            ]
        for collection in self._collections:
            if lengths is not None and len(lengths) != collection.obj.npartitions:
                raise SourceDataError(
                    f"lengths has {len(lengths)} entries, but {collection.label} has "
                    f"{collection.obj.npartitions} partitions. Give one row count per partition."
                )
        first = found[0]
        for i, rows in enumerate(found[1:], start=1):
            if rows != first:
                raise SourceDataError(_misaligned(self._collections, 0, first, i, rows))
        if lengths is not None and lengths != first:
            raise SourceDataError(
                f"lengths={lengths} disagrees with the chunks of {self._collections[0].label} "
                f"({first}). Leave lengths out for arrays: their chunks say it."
            )
        assert first is not None  # each collection's rows are known, given or counted
        return first

    def read_block(self, index: int) -> Chunk:
        return self._read([index])[0]

    def read_blocks(self, indices: Sequence[int]) -> list[Chunk]:
        """Read several partitions whole, computed together, one chunk per index.

        One ``dask.compute`` call (per kind of collection) serves them all, so a cluster
        computes them in parallel and work they share upstream is done once. Memory is the
        sum of the partitions, as when they are read one by one into one shuffle window.
        """
        return self._read(list(indices))

    def head(self, rows: int) -> Chunk:
        first = next(i for i, count in enumerate(self.block_rows) if count)
        return tuple(part[:rows] for part in self._read([first], rows)[0])

    def distributed_client(self) -> Any:
        """The ``distributed.Client`` that computes the partitions, or None if none does.

        The ``scheduler`` given to the source if it is a client; else, unless a scheduler that
        is not distributed is given or configured (``dask.config.set(scheduler="threads")``),
        the current client, if there is one. Full-data passes over the source run on the
        workers of this client (:mod:`pymc_extras.streaming.passes.pass_runner`).
        """
        scheduler = self._scheduler
        if scheduler is None:
            scheduler = self._dask.config.get("scheduler", None)
        if _is_client(scheduler):
            return scheduler
        distributed_names = ("distributed", "dask.distributed")
        if scheduler is not None and not (
            isinstance(scheduler, str) and scheduler.lower() in distributed_names
        ):
            return None
        if "distributed" not in sys.modules:  # no client can exist without it
            return None
        from distributed import Client

        try:
            return Client.current(allow_global=True)
        except ValueError:  # no client
            return None

    def partitions(self) -> list[tuple]:
        """The lazy partitions, one tuple per partition of one ``Delayed`` per collection.

        Computing a partition's tuple and passing the results to
        ``self.partition_reader().chunk(index, results)`` gives ``read_block(index)``, with the
        work done wherever the ``Delayed`` objects are computed (on a cluster's workers).
        """
        per_collection = []
        for collection in self._collections:
            obj = collection.obj
            if collection.kind == "array":
                whole_rows = dict.fromkeys(range(1, obj.ndim), -1)
                if any(len(chunks) > 1 for chunks in obj.chunks[1:]):
                    obj = obj.rechunk(whole_rows)  # blocks of whole rows: one per partition
                delayed = list(obj.to_delayed().reshape(-1))
            else:
                delayed = list(obj.to_delayed())
            per_collection.append(delayed)
        return list(zip(*per_collection))

    def partition_reader(self) -> "PartitionReader":
        """What turns computed partitions into chunks: small, picklable, holds no collection."""
        described = tuple(dataclasses.replace(c, obj=None) for c in self._collections)
        return PartitionReader(described, self.block_rows)

    def _read(self, indices: list[int], rows: int | None = None) -> list[Chunk]:
        pieces = [[c.piece(index, rows) for index in indices] for c in self._collections]
        try:
            results = self._compute(pieces)
        except Exception as error:
            raise self._partition_error(error, indices) from error
        reader = self.partition_reader()
        return [
            reader.chunk(index, [computed[k] for computed in results], whole=rows is None)
            for k, index in enumerate(indices)
        ]

    def _compute(self, pieces: list[list]) -> list[tuple]:
        """Compute each collection's pieces: one ``dask.compute`` for the arrays, one for the rest.

        Within a call, work the pieces share upstream is done once. Arrays and DataFrames are
        kept apart because Dask 2026.8 returns the results of a mixed call scrambled.
        """
        results: list = [None] * len(pieces)
        for arrays in (True, False):
            which = [i for i, c in enumerate(self._collections) if (c.kind == "array") == arrays]
            if which:
                flat = [piece for i in which for piece in pieces[i]]
                computed = self._dask.compute(*flat, scheduler=self._scheduler)
                for n, i in enumerate(which):
                    size = len(pieces[i])
                    results[i] = computed[n * size : (n + 1) * size]
        return results

    def _partition_error(self, error: Exception, indices: list[int]) -> Exception:
        """``error`` of computing partitions ``indices``, saying which, and which files they read.

        A file that pyarrow cannot read (changed or corrupted after Dask planned the
        partitions) is a :class:`SourceDataError`; other errors keep their type, with a note.
        """
        shown = f"partition {indices[0]}" if len(indices) == 1 else f"one of partitions {indices}"
        labels = " and ".join(c.label for c in self._collections)
        paths = sorted({path for c in self._collections for path in _read_paths(c.obj)})
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        reads = f" (it reads {', '.join(map(repr, paths[:3]))}{more})" if paths else ""
        where = f"{shown} of {labels}{reads}"
        if isinstance(error, PermissionError | FileNotFoundError):
            error.add_note(f"While computing {where}.")
            return error
        if isinstance(error, OSError) or type(error).__module__.startswith("pyarrow"):
            return SourceDataError(
                f"Computing {where} failed: {type(error).__name__}: {str(error).strip()}. A file "
                "it reads is corrupt, or changed after Dask planned the partitions: read the "
                "data again (dd.read_parquet(...)) and build the source on it."
            )
        error.add_note(f"While computing {where}.")
        return error

    def __getstate__(self) -> dict[str, Any]:
        # A distributed Client does not pickle: a copy computes with Dask's default scheduler,
        # which is the client active where it runs, if there is one.
        state = self.__dict__.copy()
        if type(self._scheduler).__module__.split(".")[0] == "distributed":
            state["_scheduler"] = None
        return state

    def __repr__(self) -> str:
        return f"DaskSource({', '.join(c.label for c in self._collections)})"


def _read_paths(obj) -> list[str]:
    """The paths a Dask DataFrame's readers were given (``dd.read_parquet(path)``), if any.

    For error messages only: a collection Dask cannot describe so gives none.
    """
    expr = getattr(obj, "expr", None)
    if expr is None:
        return []
    try:
        nodes = list(expr.walk())
    except Exception:  # an expression of another Dask version
        return []
    paths: list[str] = []
    for node in nodes:
        if "path" in getattr(node, "_parameters", ()):
            path = node.operand("path")
            paths.extend([path] if isinstance(path, str) else list(path or ()))
    return [str(path) for path in paths]


def _is_client(scheduler) -> bool:
    return type(scheduler).__module__.split(".")[0] == "distributed" and hasattr(
        scheduler, "scatter"
    )


def _kind(dask, obj, position: int) -> str:
    if not dask.is_dask_collection(obj):
        raise InvalidSourceError(
            f"Collection {position} given to DaskSource is a {type(obj).__name__}, not a Dask "
            "collection. Pass Dask arrays, DataFrames or Series (numpy and pandas data can be "
            "given to pm.Minibatch directly)."
        )
    module = type(obj).__module__
    if module.startswith("dask.array"):
        return "array"
    if module.startswith(("dask.dataframe", "dask_expr")):
        dd = import_optional("dask.dataframe", extra="dask", reader="DaskSource")
        if isinstance(obj, dd.DataFrame):
            return "frame"
        if isinstance(obj, dd.Series):
            return "series"
    raise InvalidSourceError(
        f"Collection {position} given to DaskSource is a {type(obj).__name__}, which has no rows "
        "to stream. Pass Dask arrays, DataFrames or Series (a Bag can become a DataFrame with "
        "bag.to_dataframe())."
    )


def _describe(dask, obj, position: int, columns) -> _Collection:
    """Check one collection and work out its outputs, from its metadata only."""
    kind = _kind(dask, obj, position)
    label = f"{type(obj).__name__} {position}"
    if kind == "array":
        if obj.ndim == 0:
            raise SourceDataError(f"{label} is 0-dimensional: it needs a leading axis of rows.")
        if obj.dtype.kind not in _NUMERIC_KINDS:
            raise SourceDataError(
                f"{label} has dtype {obj.dtype}, which is not numeric. Convert it to numbers "
                "(e.g. x.astype(float)) before streaming."
            )
        return _Collection(obj, kind, [None], [obj.dtype], set(), label)
    if kind == "series":
        dtype = _checked_dtype(obj.dtype, obj.name, label)
        nullable = {obj.name} if not isinstance(obj.dtype, np.dtype) else set()
        return _Collection(obj, kind, [None], [dtype], nullable, label)
    available = list(obj.columns)
    selections: list[Selection] = (
        [available]
        if columns is None
        else [entry if isinstance(entry, str) else list(entry) for entry in columns]
    )
    if columns is not None and (isinstance(columns, str) or not selections):
        raise InvalidSourceError(
            f"columns must be a list with one entry per output (a name or a list of names), "
            f"got {columns!r}. For example columns=[['x1', 'x2'], 'y']."
        )
    wanted = [name for s in selections for name in ([s] if isinstance(s, str) else s or [])]
    missing = [name for name in dict.fromkeys(wanted) if name not in available]
    if missing:
        raise SourceDataError(
            f"{label} has no column(s) {_shorten(missing)}. Its columns are {_shorten(available)}."
        )
    if columns is not None:
        # Only the wanted columns are computed; Dask pushes this into its readers.
        obj = obj[list(dict.fromkeys(wanted))]
    dtypes, nullable = [], set()
    for selection in selections:
        names = [selection] if isinstance(selection, str) else selection
        if not names:
            raise SourceDataError(f"{label}: an output of columns={columns!r} has no columns.")
        column_dtypes = [_checked_dtype(obj.dtypes[name], name, label) for name in names]
        nullable.update(name for name in names if not isinstance(obj.dtypes[name], np.dtype))
        dtypes.append(np.result_type(*column_dtypes))
    return _Collection(obj, kind, selections, dtypes, nullable, label)


def _checked_dtype(dtype, name, label: str) -> np.dtype:
    numpy_dtype = _numpy_dtype(dtype)
    if numpy_dtype is None or numpy_dtype.kind not in _NUMERIC_KINDS:
        raise SourceDataError(
            f"{label}: column {name!r} has dtype {dtype}, which is not numeric. Convert it to "
            "numbers (e.g. category codes or dummy columns) or leave it out with columns=."
        )
    return numpy_dtype


def _row_shapes(collection: _Collection) -> list[tuple[int, ...]]:
    if collection.kind == "array":
        return [tuple(int(size) for size in collection.obj.shape[1:])]
    return [() if isinstance(s, str) or s is None else (len(s),) for s in collection.selections]


def _known_rows(collection: _Collection) -> tuple[int, ...] | None:
    if collection.kind != "array":
        return None
    return tuple(int(count) for count in collection.obj.chunks[0])


def _partition_lengths(collection: _Collection):
    # Counted on the collection as it is read, all its columns: Dask's optimizer partitions a
    # selection of fewer columns differently (dask-expr fuses several Parquet files into one
    # partition when few columns are read), so counting one column miscounts the partitions.
    return collection.obj.map_partitions(len)


def _misaligned(collections, i: int, rows_i, j: int, rows_j) -> str:
    a, b = collections[i].label, collections[j].label
    if len(rows_i) != len(rows_j):
        detail = f"{a} has {len(rows_i)} partitions and {b} has {len(rows_j)}"
    else:
        k = next(k for k, (m, n) in enumerate(zip(rows_i, rows_j)) if m != n)
        detail = f"partition {k} has {rows_i[k]} rows in {a} but {rows_j[k]} in {b}"
    return (
        f"Aligned Dask collections must be partitioned alike, but {detail} "
        f"({sum(rows_i)} and {sum(rows_j)} rows in all). Rechunk arrays to match "
        "(y = y.rechunk({0: X.chunks[0]})), or take every output from one DataFrame with "
        "columns=[...]."
    )
