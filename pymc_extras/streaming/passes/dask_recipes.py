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
"""How a task of a pass on a Dask cluster gets its partition: computed by Dask, or in pieces."""

from collections.abc import Generator, Sequence
from typing import Any

from pymc_extras.streaming.readers.arrow_files import PARQUET_DECODE_ROWS, PARQUET_READ_BUFFER_BYTES

__all__: list[str] = []  # helpers of the package: imported by name, not exported


class ParquetPieces:
    """How to read a partition that is whole row groups of one Parquet file, in pieces.

    ``dask.dataframe.read_parquet`` computes such a partition in one task that reads its row
    groups whole: a 1M-row file of 11 float64 columns holds some 250 MB in pyarrow's pool at
    its peak, and then a DataFrame of 88 MB. Read a piece at a time instead
    (``ParquetFile.iter_batches``, at most 16,384 rows), the partition costs a worker one piece
    (1.4 MB) and pyarrow's read buffers, some 30 MB in all. Each piece is the DataFrame that the
    task would have computed, cut to those rows: the same columns, dtypes and values.
    """

    __slots__ = ("columns", "fs", "path", "row_groups")

    def __init__(self, fs: Any, path: str, row_groups: list[int] | None, columns: list[str]):
        self.fs, self.path, self.row_groups, self.columns = fs, path, row_groups, columns

    def frames(self, rows: int) -> Generator[Any]:
        import pyarrow.parquet as pq

        with self.fs.open(self.path, "rb") as handle:
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER_BYTES)
            batches = file.iter_batches(
                batch_size=min(rows, PARQUET_DECODE_ROWS),
                row_groups=self.row_groups,
                columns=self.columns,
                use_threads=False,
            )
            for batch in batches:
                yield batch.to_pandas()


def _parquet_pieces(graph: dict, keys: list) -> ParquetPieces | None:
    """The partition as :class:`ParquetPieces`, if its graph is one plain read of Parquet.

    That is one task of ``dask.dataframe.read_parquet``'s own Parquet function, on row groups
    of one file, with neither filters, nor partition values from folder names, nor an index,
    nor categories: its DataFrame is then the file's columns, row for row. Any other graph
    (or a Dask version whose reader differs) is computed by Dask itself.
    """
    try:
        from dask.dataframe.io.parquet.core import ParquetFunctionWrapper
    except ImportError:
        return None
    if len(graph) != 1 or len(keys) != 1:
        return None
    [task] = graph.values()
    read = getattr(task, "func", None)
    args: tuple = tuple(getattr(task, "args", ()))
    if not isinstance(read, ParquetFunctionWrapper) or len(args) != 1 or task.kwargs:
        return None
    [part] = args
    if isinstance(part, list) and len(part) == 1:
        [part] = part
    if not isinstance(part, dict) or set(part) - {"piece", "kwargs"} or part.get("kwargs"):
        return None
    path, row_groups, partition_keys = part["piece"]
    options = read.common_kwargs
    plain = not (partition_keys or read.index or read.dtype_backend)
    plain = plain and not any(options.get(k) for k in ("filters", "categories", "dtype_backend"))
    if not plain or not isinstance(path, str) or not read.columns:
        return None
    return ParquetPieces(read.fs, path, row_groups, list(read.columns))


class Recipe:
    """How to compute one partition (the part of its collections' graph it needs), in a task.

    A plain object, so that Dask hands it to the task as it is instead of computing it first:
    the task computes the partition itself, with Dask's synchronous scheduler, and evaluates
    it at once. A partition then never leaves the worker that reads it, which is not so when
    it is a task of its own: the scheduler may run the evaluation on the other worker and send
    the partition there (to balance the load), which moves rows.
    """

    __slots__ = ("graph", "keys")

    def __init__(self, graph: dict, keys: list):
        self.graph, self.keys = graph, keys

    def compute(self) -> Sequence:
        from dask.local import get_sync

        return get_sync(self.graph, self.keys)


def recipes(partitions: list[tuple]) -> list[tuple]:
    """The arguments that give each partition in a task, one tuple per partition.

    A :class:`Recipe` when the partition's graph is self-contained (files to read, data to
    generate); else the ``Delayed`` objects themselves: a persisted collection's partitions are
    in the cluster's memory already, and Dask runs their tasks where they are.
    """
    from dask.optimization import cull
    from distributed import Future

    graph: dict = {}
    seen: set[int] = set()
    for parts in partitions:
        for part in parts:
            part_graph = part.__dask_graph__()
            if id(part_graph) not in seen:  # the partitions of a collection share one graph
                seen.add(id(part_graph))
                graph.update(part_graph)
    arguments = []
    for parts in partitions:
        keys = [part.key for part in parts]
        needed, dependencies = cull(graph, keys)
        # A persisted partition is a Future in the graph: its data is on a worker already.
        held = any(isinstance(node, Future) for node in needed.values())
        held = held or any(d not in needed for deps in dependencies.values() for d in deps)
        if held:
            arguments.append(tuple(parts))
        else:
            arguments.append((_parquet_pieces(needed, keys) or Recipe(needed, keys),))
    return arguments
