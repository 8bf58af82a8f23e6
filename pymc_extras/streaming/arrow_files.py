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
"""Readers of columnar files through pyarrow: Parquet datasets, Arrow IPC (Feather) and CSV."""

import numbers
import os

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pymc.exceptions import SourceDataError

from pymc.streaming.sources import BlockSource, Chunk, OutputSpec, Source
from pymc_extras.streaming.files import FileStamps, access_error, find_files, readable
from pymc_extras.streaming.optional import import_optional

__all__ = ["ArrowIPCSource", "CSVSource", "FeatherSource", "ParquetSource"]

PARQUET_READ_BUFFER_BYTES = 1 << 18
"""Bytes read from each Parquet column chunk at a time (256 KiB) instead of the whole chunk:
one such buffer per streamed column. Larger buffers mean fewer reads, e.g. from object stores."""

PARQUET_DECODE_ROWS = 16_384
"""Rows decoded from a row group at a time. Arrow's reader reserves several times a batch, so
smaller batches hold less memory; 16k rows also decoded fastest here."""

PARQUET_RETURN_FREED_BYTES = 1 << 25
"""Bytes of rows decoded between two returns of pyarrow's freed pages to the system (32 MiB,
about 3 windows of ten float64 columns). Returning them after every read held no less memory,
and cost half the read speed in page faults."""

CSV_BLOCK_BYTES = 1 << 24
"""Bytes of CSV text parsed per read (16 MiB): about 200,000 rows of ten numbers."""

Columns = str | Sequence[str | Sequence[str]] | Mapping[str, str | Sequence[str]] | None
"""Which columns make which outputs: one name is a 1-D output, a list of names a 2-D output."""


@dataclass(frozen=True)
class _Output:
    names: tuple[str, ...]
    matrix: bool  # a list of columns: one 2-D output, even with one name


def _outputs(columns: Columns, available: Sequence[str]) -> tuple[_Output, ...]:
    """Parse ``columns``; ``None`` is every column as one 2-D output."""
    if columns is None:
        return (_Output(tuple(available), True),)
    if isinstance(columns, str):
        columns = [columns]
    elif isinstance(columns, Mapping):
        columns = list(columns.values())
    outputs = []
    for output in columns:
        if isinstance(output, str):
            outputs.append(_Output((output,), False))
        elif isinstance(output, Sequence) and output and all(isinstance(n, str) for n in output):
            outputs.append(_Output(tuple(output), True))
        else:
            raise SourceDataError(
                f"columns: each output is a column name (a 1-D output) or a non-empty list of "
                f"names (one 2-D output), got {output!r}. For example "
                "columns=[['x1', 'x2'], 'y'] gives a matrix X and a vector y."
            )
    if not outputs:
        raise SourceDataError("columns is empty: name at least one column to stream.")
    return tuple(outputs)


def _column_names(outputs: Sequence[_Output]) -> list[str]:
    """Every column the outputs read, once each, in order."""
    return list(dict.fromkeys(name for output in outputs for name in output.names))


def _check_schema(schema, outputs: Sequence[_Output], where: str) -> None:
    """Refuse missing and non-numeric columns before anything is read."""
    import pyarrow as pa

    names = schema.names
    missing = [name for name in _column_names(outputs) if name not in names]
    if missing:
        raise SourceDataError(
            f"{where}: no column(s) {', '.join(map(repr, missing))}. The columns are: "
            f"{', '.join(names)}."
        )
    for name in _column_names(outputs):
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise SourceDataError(
                f"{where}: column {name!r} has type {kind}, which is not numeric. Stream numeric "
                "columns only: convert this one (e.g. to category codes) in the file, or leave "
                "it out of columns."
            )


def _specs(schema, outputs: Sequence[_Output]) -> tuple[OutputSpec, ...]:
    specs = []
    for output in outputs:
        dtypes = [schema.field(name).type.to_pandas_dtype() for name in output.names]
        row_shape = (len(output.names),) if output.matrix else ()
        specs.append(OutputSpec(np.dtype(np.result_type(*dtypes)), row_shape))
    return tuple(specs)


def _column_nulls(table, name: str, where: str) -> None:
    nulls = table.column(name).null_count
    if nulls:
        raise SourceDataError(
            f"{where}: column {name!r} has {nulls} null value(s). Streaming minibatches need "
            "complete numeric data: drop or impute the nulls in the file."
        )


def _column(table, name: str, where: str) -> np.ndarray:
    _column_nulls(table, name, where)
    return table.column(name).to_numpy(zero_copy_only=False)


def _matrix(table, names: Sequence[str], dtype: np.dtype, where: str) -> np.ndarray:
    """Columns side by side, rows contiguous: the layout batches are gathered from."""
    columns = table.select(list(names))
    for name in names:
        _column_nulls(columns, name, where)
    same_type = all(field.type.to_pandas_dtype() == dtype for field in columns.schema)
    if same_type and hasattr(columns, "to_tensor"):  # Table.to_tensor: pyarrow >= 18
        # One pass in Arrow's C++, outside the GIL: half the time of filling column by column.
        return np.asarray(columns.to_tensor(row_major=True)).reshape(len(columns), len(names))
    matrix = np.empty((len(columns), len(names)), dtype=dtype)
    for j, name in enumerate(names):
        matrix[:, j] = columns.column(name).to_numpy(zero_copy_only=False)
    return matrix


def _to_chunk(table, outputs: Sequence[_Output], specs: Sequence[OutputSpec], where: str) -> Chunk:
    """Arrow table → one numpy array per output, 2-D outputs in row-major order."""
    parts = []
    for output, spec in zip(outputs, specs):
        if not output.matrix:
            parts.append(_column(table, output.names[0], where).astype(spec.dtype, copy=False))
            continue
        parts.append(_matrix(table, output.names, spec.dtype, where))
    return tuple(parts)


def _paths(path, suffix: str | tuple[str, ...] | None, kind: str) -> list[str]:
    """Files named by a path, a list of paths, or a directory (its files ending in ``suffix``).

    Directories are searched recursively, each file once even through symbolic links, and
    every file is checked to be readable, so that a file the process may not read is reported
    as such rather than as a corrupt file.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    files = []
    for entry in (os.fspath(name) for name in paths):
        if os.path.isdir(entry):
            found = find_files(entry, suffix)
            if not found:
                ends = () if suffix is None else suffix if isinstance(suffix, tuple) else (suffix,)
                wanted = " or ".join(f"*{end}" for end in ends) or kind
                raise FileNotFoundError(
                    f"The directory {entry!r} has no {wanted} files (names starting with '.' or "
                    "'_' are skipped). Check the path, or write the data there first."
                )
            files.extend(found)
        elif os.path.exists(entry):
            files.append(entry)
        else:
            raise FileNotFoundError(f"No such file or directory: {entry!r}.")
    if not files:
        raise FileNotFoundError("No files to read: the list of paths is empty.")
    for file in files:
        readable(file)
    return files


def _file_error(error: BaseException, path: str, message: str) -> Exception:
    """The error to raise for a failed read of ``path``: a clear one when access was refused."""
    clear = access_error(error, path)
    return clear if clear is not None else SourceDataError(f"{message}: {error}")


def _return_freed_memory() -> None:
    """Ask pyarrow's default memory pool to return the pages it has freed to the system now.

    Process-wide: the pool is shared by all pyarrow work in the process, which may then find
    pages it kept for reuse returned, and fault them in again. Only with
    ``ParquetSource(..., release_freed_memory=True)``.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _arrow_errors() -> tuple[type[Exception], ...]:
    """What pyarrow raises on a bad file; call it before a ``try``, not in its ``except``.

    An ``except`` clause is evaluated when a generator is closed too, as late as interpreter
    shutdown, when nothing can be imported any more.
    """
    import pyarrow as pa

    return pa.ArrowException, OSError


class ParquetSource(BlockSource):
    """Stream a Parquet file, directory or dataset, one row group at a time.

    Only the file footers are read to build the source: the row count (for ``total_size``), the
    schema and the row groups come from the metadata. Each epoch visits the row groups in a new
    random order, and rows are shuffled across the row groups that share a shuffle window.

    Parameters
    ----------
    path : str, path-like, list of them, or pyarrow.dataset.Dataset
        A file, a directory (read recursively; hive-style ``key=value`` folders become
        columns), a list of files, or a dataset opened with ``pyarrow.dataset.dataset``.
    columns : str, list or dict, optional
        The outputs, in order: a column name gives a 1-D output, a list of names one 2-D output
        (rows × columns). ``columns=[["x1", "x2"], "y"]`` streams a matrix and a vector; a dict
        maps output names to the same. Default: every column as one 2-D output.
    filter : pyarrow.compute.Expression, optional
        Rows to keep, e.g. ``pc.field("year") >= 2020``. Row groups and partitions whose
        statistics exclude it are skipped; the others are counted once, reading only the columns
        the filter uses.
    partitioning : str or pyarrow.dataset.Partitioning, default "hive"
        How folder names map to columns in a directory.
    use_threads : bool, default False
        Decode the columns of a row group in parallel in pyarrow's thread pool. Reads are
        about a third faster, but the threads share the CPU with the gradient step, and each
        keeps memory of its own: by default one reader thread decodes, which bounds memory
        best. A fit rarely needs more: one thread decodes several times the rows per second
        that a step consumes.
    release_freed_memory : bool, default False
        Ask pyarrow's default memory pool to return the pages it has freed to the system every
        32 MiB decoded (``pyarrow.default_memory_pool().release_unused()``). Its allocator keeps
        a thread's freed pages for reuse for a while; returning them lowers the peak memory of
        a long fit by some tens of MB. The pool is the whole process's: other pyarrow work in
        the process may find pages it kept returned, and pay page faults to get them back.
        Setting ``MIMALLOC_PURGE_DELAY=0`` in the environment before Python starts has much
        the same effect, for the whole process too.

    Notes
    -----
    Memory: a row group up to the shuffle buffer is read whole, and a larger one (without a
    filter) a window-sized piece at a time with 256 KiB read buffers, so about one window plus
    the column readers' dictionary pages is held at a time. The row group size is chosen when
    the file is written (``pyarrow.parquet.write_table(..., row_group_size=...)``); 64k–1M rows
    per row group suit streaming. Other files are never touched while one is read: no readahead.

    Examples
    --------
    .. code-block:: python

        source = pmx.streaming.ParquetSource("data/", columns=[["x1", "x2", "x3"], "y"])
        X, y = pm.Minibatch(source, batch_size=256, streaming=True)
    """

    def __init__(
        self,
        path,
        *,
        columns: Columns = None,
        filter=None,
        partitioning="hive",
        use_threads: bool = False,
        release_freed_memory: bool = False,
    ):
        ds = import_optional("pyarrow.dataset", extra="parquet", reader="ParquetSource")
        if isinstance(path, ds.Dataset):
            dataset = path
        else:
            directory = isinstance(path, str | os.PathLike) and os.path.isdir(path)
            # A directory is searched by us, not by pyarrow: each file once, through symbolic
            # links too (a link back to a parent folder would list every file again and again).
            files = _paths(path, None if directory else ".parquet", "Parquet")
            target: Any = files[0] if len(files) == 1 and not directory else files
            base = os.fspath(path) if directory else None
            try:
                dataset = ds.dataset(
                    target, format="parquet", partitioning=partitioning, partition_base_dir=base
                )
            except _arrow_errors() as error:
                shown = target if isinstance(target, str) else os.fspath(path)
                raise _file_error(
                    error,
                    shown,
                    f"{shown} is not a readable Parquet file or dataset (truncated or corrupt?)",
                ) from error
        self._dataset = dataset
        self._filter = filter
        self._use_threads = use_threads
        self._release_freed_memory = bool(release_freed_memory)
        self._bytes_since_return = 0
        where = f"Parquet dataset {path!r:.100}"
        self._outputs = _outputs(columns, dataset.schema.names)
        _check_schema(dataset.schema, self._outputs, where)
        self.specs = _specs(dataset.schema, self._outputs)
        self._columns = _column_names(self._outputs)
        self._scan_options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        self._blocks: list[tuple[Any, str, int]] = []  # (row group fragment, file, index)
        rows = []
        for fragment in dataset.get_fragments(filter=filter):
            for piece, count in self._row_groups(fragment):
                self._blocks.append((piece, fragment.path, piece.row_groups[0].id))
                rows.append(count)
        if not sum(rows):
            raise SourceDataError(
                f"{where} has no rows{' that pass the filter' if filter is not None else ''}: "
                "its files hold 0 rows. Check the path"
                f"{' and the filter' if filter is not None else ''}, or write the data first."
            )
        self.block_rows = tuple(rows)
        # Without a filter, a piece of a row group has a known number of rows.
        self.splits_blocks = filter is None
        self._stamps = FileStamps(sorted({path for _, path, _ in self._blocks}))
        self._describe = where

    def _row_groups(self, fragment):
        """The fragment's row groups with their row counts, after checking its footer."""
        try:
            schema = fragment.physical_schema
            pieces = fragment.split_by_row_group(self._filter, schema=self._dataset.schema)
            metadata = fragment.metadata
        except _arrow_errors() as error:
            raise _file_error(
                error,
                fragment.path,
                f"{fragment.path} is not a readable Parquet file (truncated or corrupt?)",
            ) from error
        self._check_fragment(fragment, schema, metadata)
        for piece in pieces:
            if self._filter is None:
                yield piece, piece.row_groups[0].num_rows
            else:
                # Only the filter's columns are read. Not Scanner.count_rows: on a row group of a
                # partition the filter selects whole, it counts the whole file (pyarrow 26).
                scanner = piece.scanner(
                    schema=self._dataset.schema, filter=self._filter, columns=[]
                )
                yield piece, scanner.to_table().num_rows

    def _check_fragment(self, fragment, schema, metadata) -> None:
        """Every file holds the columns with the dataset's types; statistics show no nulls.

        A streamed column that a file lacks is a fault, unless the file's folder names give it
        (a hive partition ``key=value``): only then does pyarrow fill it in.
        """
        import pyarrow.dataset as ds

        partition_columns = set(ds.get_partition_keys(fragment.partition_expression))
        expected = self._dataset.schema
        for name in self._columns:
            if name in partition_columns:
                continue
            if name not in schema.names:
                raise SourceDataError(
                    f"{fragment.path} has no column {name!r}, which other files of the dataset "
                    "have, and its folder names do not give it either (as a hive partition "
                    f"{name}=value). Every file must hold the streamed columns."
                )
            if schema.field(name).type != expected.field(name).type:
                raise SourceDataError(
                    f"{fragment.path}: column {name!r} has type {schema.field(name).type} where "
                    f"the dataset has {expected.field(name).type}. Write every file with the same "
                    "schema."
                )
        paths = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
        for group in range(metadata.num_row_groups):
            for name in self._columns:
                if name not in paths:
                    continue
                stats = metadata.row_group(group).column(paths.index(name)).statistics
                if stats is not None and stats.has_null_count and stats.null_count:
                    raise SourceDataError(
                        f"{fragment.path}, row group {group}: column {name!r} has "
                        f"{stats.null_count} null value(s). Streaming minibatches need complete "
                        "numeric data: drop or impute the nulls in the file."
                    )

    def iter_block(self, index: int, rows: int) -> Generator[Chunk]:
        """Row group ``index`` in pieces of ``rows`` rows, decoded a piece at a time.

        ``ParquetFile.iter_batches`` with a bounded read buffer decodes the pages of a row group
        as it goes, holding about 25 MB for ten columns; a dataset scan of the same 1M-row row
        group holds its column chunks whole, about 120 MB.
        """
        pa = import_optional("pyarrow", extra="parquet", reader="ParquetSource")
        import pyarrow.parquet as pq

        piece, path, group = self._blocks[index]
        constants = self._partition_values(piece)
        in_file = [name for name in self._columns if name not in constants]
        if not in_file:
            yield from super().iter_block(index, rows)
            return
        self._stamps.check(path)
        where = f"{path}, row group {group}"
        pending, buffered = [], 0
        arrow_errors = _arrow_errors()
        handle = None
        try:
            # Closed when the block is done, or when the batcher closes this generator.
            handle = self._dataset.filesystem.open_input_file(path)
            file = pq.ParquetFile(handle, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER_BYTES)
            batches = file.iter_batches(
                batch_size=min(rows, PARQUET_DECODE_ROWS),
                row_groups=[group],
                columns=in_file,
                use_threads=self._use_threads,
            )
            for batch in batches:
                pending.append(batch)
                buffered += batch.num_rows
                batch = None  # pending holds it; see below
                while buffered >= rows:
                    table = pa.Table.from_batches(pending)
                    pending, buffered = table.slice(rows).to_batches(), buffered - rows
                    piece = self._piece(table.slice(0, rows), constants, where)
                    # Once nothing holds the decoded rows, a return of freed pages in
                    # _count_decoded includes them: 8 MB less at the peak.
                    table = None
                    self._count_decoded(piece)
                    yield piece
        except arrow_errors as error:
            raise _file_error(error, path, f"Reading {where} failed (corrupt file?)") from error
        finally:
            if handle is not None:
                handle.close()
        if buffered:
            piece = self._piece(pa.Table.from_batches(pending), constants, where)
            pending = []
            self._count_decoded(piece)
            yield piece

    def _partition_values(self, piece) -> dict:
        """Streamed columns that hive-style folder names give, with their values in ``piece``."""
        import pyarrow.dataset as ds

        keys = ds.get_partition_keys(piece.partition_expression)
        return {name: keys[name] for name in self._columns if name in keys}

    def _piece(self, table, constants: dict, where: str) -> Chunk:
        import pyarrow as pa

        for name, value in constants.items():
            column = np.full(table.num_rows, value)
            table = table.append_column(
                name, pa.array(column, self._dataset.schema.field(name).type)
            )
        return _to_chunk(table, self._outputs, self.specs, where)

    def _count_decoded(self, chunk: Chunk) -> None:
        """Count a read's bytes; return freed pages once enough have been decoded since.

        Only with ``release_freed_memory=True``: the pool is the whole process's.
        """
        if not self._release_freed_memory:
            return
        self._bytes_since_return += sum(part.nbytes for part in chunk)
        if self._bytes_since_return >= PARQUET_RETURN_FREED_BYTES:
            self._bytes_since_return = 0
            _return_freed_memory()

    def head(self, rows: int) -> Chunk:
        try:
            return super().head(rows)
        finally:
            # The first rows cost a dictionary page of each column (about 1 MB each) to decode,
            # in the thread that builds the model, which reads nothing more: about 30 MB.
            if self._release_freed_memory:
                _return_freed_memory()

    def read_block(self, index: int) -> Chunk:
        piece, path, group = self._blocks[index]
        self._stamps.check(path)
        where = f"{path}, row group {group}"
        try:
            table = piece.to_table(
                schema=self._dataset.schema,
                columns=self._columns,
                filter=self._filter,
                use_threads=self._use_threads,
                fragment_scan_options=self._scan_options,
            )
        except _arrow_errors() as error:
            raise _file_error(error, path, f"Reading {where} failed (corrupt file?)") from error
        chunk = _to_chunk(table, self._outputs, self.specs, where)
        table = None  # freed before it is counted, as in iter_block
        self._count_decoded(chunk)
        return chunk

    def __repr__(self) -> str:
        return f"ParquetSource({self._describe}, {len(self.block_rows)} row groups)"


class ArrowIPCSource(BlockSource):
    """Stream Arrow IPC files (Feather v2), one record batch at a time.

    Record batch sizes are read from the files' metadata without reading their data. Each epoch
    visits the record batches in a new random order, as :class:`ParquetSource` does row groups.

    Parameters
    ----------
    path : str, path-like or list of them
        A file, a directory (its ``*.arrow`` and ``*.feather`` files) or a list of files, all in
        the Arrow IPC *file* format (``pyarrow.feather.write_feather``,
        ``pyarrow.ipc.new_file``).
    columns : str, list or dict, optional
        The outputs, as for :class:`ParquetSource`. Default: every column as one 2-D output.

    Notes
    -----
    Memory: one record batch is read at a time, through ordinary reads rather than a memory
    map, so the process's memory does not grow with the pages of the file it has touched.

    Examples
    --------
    .. code-block:: python

        source = pmx.streaming.ArrowIPCSource("data.feather", columns=[["x1", "x2"], "y"])
        X, y = pm.Minibatch(source, batch_size=256, streaming=True)
    """

    def __init__(self, path, *, columns: Columns = None):
        import_optional("pyarrow", extra="parquet", reader="ArrowIPCSource")
        files = _paths(path, (".arrow", ".feather", ".ipc"), "Arrow IPC")
        self._blocks: list[tuple[str, int]] = []
        rows = []
        schema = None
        for file in files:
            file_schema, counts = _ipc_batch_rows(file)
            if schema is None:
                schema = file_schema
                self._outputs = _outputs(columns, schema.names)
                _check_schema(schema, self._outputs, file)
                self.specs = _specs(schema, self._outputs)
                self._columns = _column_names(self._outputs)
            else:
                _check_same_columns(file_schema, schema, self._outputs, file, files[0])
            self._blocks.extend((file, i) for i in range(len(counts)))
            rows.extend(counts)
        if not sum(rows):
            raise SourceDataError(
                f"{files[0] if len(files) == 1 else f'The {len(files)} files in {path!r}'} "
                "hold no rows. Check the path, or write the data first."
            )
        self.block_rows = tuple(rows)
        self._stamps = FileStamps(files)
        self._describe = files[0] if len(files) == 1 else f"{len(files)} files in {files[0]!r}..."

    def read_block(self, index: int) -> Chunk:
        """Read record batch ``index``, fully validated before any array is built from it.

        Each read opens its file and closes it again, so the source holds no file open
        between reads, however many files it streams.
        """
        import pyarrow as pa
        import pyarrow.ipc

        file, batch = self._blocks[index]
        self._stamps.check(file)
        where = f"{file}, record batch {batch}"
        try:
            with pa.OSFile(file) as handle:
                table = pyarrow.ipc.open_file(handle).get_batch(batch).select(self._columns)
            # Lengths, offsets and buffers checked against each other: a batch whose header
            # claims more rows than its buffers hold would otherwise be read past their end.
            table.validate(full=True)
        except _arrow_errors() as error:
            raise _file_error(
                error, file, f"Reading {where} failed (corrupt or crafted file?)"
            ) from error
        if table.num_rows != self.block_rows[index]:
            raise SourceDataError(
                f"{where} has {table.num_rows} rows, but had {self.block_rows[index]} when the "
                "source was opened. The file changed while it was being streamed."
            )
        return _to_chunk(table, self._outputs, self.specs, where)

    def __repr__(self) -> str:
        return f"ArrowIPCSource({self._describe!r}, {len(self.block_rows)} record batches)"


def _ipc_batch_rows(file: str):
    """The schema of an Arrow IPC file and its record batches' row counts, each one validated.

    Through a memory map, a batch's row count costs no read of its (uncompressed) data, and
    its buffers' sizes are checked against the rows it declares without reading them either.
    """
    import pyarrow as pa
    import pyarrow.ipc

    counts = []
    try:
        with pa.memory_map(file) as mapped:
            reader = pyarrow.ipc.open_file(mapped)
            for i in range(reader.num_record_batches):
                batch = reader.get_batch(i)
                try:
                    batch.validate()
                except pa.ArrowInvalid as error:
                    raise SourceDataError(
                        f"{file}: record batch {i} declares {batch.num_rows} rows, which its "
                        f"buffers do not hold ({error}). The file is corrupt or crafted; it "
                        "cannot be read safely."
                    ) from error
                counts.append(batch.num_rows)
            return reader.schema, counts
    except _arrow_errors() as error:
        raise _file_error(
            error,
            file,
            f"{file} is not a readable Arrow IPC file (truncated, corrupt, or the IPC stream "
            "format rather than the file format?)",
        ) from error


FeatherSource = ArrowIPCSource
"""Feather v2 files are Arrow IPC files: the same reader."""


def _check_same_columns(schema, first, outputs: Sequence[_Output], file: str, first_file: str):
    for name in _column_names(outputs):
        if name not in schema.names:
            raise SourceDataError(
                f"{file} has no column {name!r}, which {first_file} has. Every file must hold "
                "the streamed columns."
            )
        if schema.field(name).type != first.field(name).type:
            raise SourceDataError(
                f"{file}: column {name!r} has type {schema.field(name).type} where {first_file} "
                f"has {first.field(name).type}. Write every file with the same schema."
            )


class CSVSource(Source):
    """Stream CSV files with pyarrow's multithreaded streaming parser.

    CSV cannot be read at random, so rows are shuffled within the shuffle window only: on disk
    order survives at the scale of the window. Prefer Parquet for data sorted on disk.

    Parameters
    ----------
    path : str, path-like or list of them
        A file, a directory (its ``*.csv`` files) or a list of files with the same header.
    columns : str, list or dict, optional
        The outputs, as for :class:`ParquetSource`. Default: every column as one 2-D output.
    dtypes : dict or dtype, optional
        Column types, e.g. ``{"y": "int64"}`` or one dtype for all. Columns not given take the
        type pyarrow infers from the first block of the first file, and keep it in every later
        block and epoch, so a column cannot change type halfway.
    num_rows : int, optional
        Rows in all the files. When not given, they are counted at construction, which parses
        the files once.
    delimiter : str, default ","
        The field delimiter.
    block_bytes : int, default CSV_BLOCK_BYTES
        Bytes of text parsed per read (16 MiB). Larger blocks parse faster and hold more memory.

    Examples
    --------
    .. code-block:: python

        source = pmx.streaming.CSVSource("data.csv", columns=[["x1", "x2"], "y"])
        X, y = pm.Minibatch(source, batch_size=256, streaming=True)
    """

    def __init__(
        self,
        path,
        *,
        columns: Columns = None,
        dtypes=None,
        num_rows: int | None = None,
        delimiter: str = ",",
        block_bytes: int = CSV_BLOCK_BYTES,
    ):
        pa = import_optional("pyarrow", extra="parquet", reader="CSVSource")
        if num_rows is not None:
            num_rows = _given_rows(num_rows)
        self._files = _paths(path, ".csv", "CSV")
        self._delimiter = delimiter
        self._block_bytes = block_bytes
        self._types = None
        first = self._files[0]
        with self._open(first, None) as reader:
            schema = reader.schema
            try:
                first_batch = next(iter(reader), None)
            except _arrow_errors() as error:
                raise SourceDataError(f"{first}, block 0: {error}") from error
        if first_batch is None or not first_batch.num_rows:
            raise SourceDataError(
                f"{first} has a header and no rows. CSVSource learns the columns' types from the "
                "first rows of the first file: write the data, or leave this file out."
            )
        self._outputs = _outputs(columns, schema.names)
        needed = _column_names(self._outputs)
        _check_unique_names(schema.names, needed, first)
        missing = [name for name in needed if name not in schema.names]
        if not missing and dtypes is not None:
            given = dtypes if isinstance(dtypes, Mapping) else dict.fromkeys(needed, dtypes)
            fields = {
                name: pa.from_numpy_dtype(np.dtype(given[name]))
                if name in given
                else schema.field(name).type
                for name in schema.names
            }
            schema = pa.schema(fields)
        _check_schema(schema, self._outputs, self._files[0])
        self._types = {name: schema.field(name).type for name in needed}
        self.specs = _specs(schema, self._outputs)
        self._stamps = FileStamps(self._files)
        self.num_rows = num_rows if num_rows is not None else self._count_rows()

    def _open(self, file: str, types):
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            column_types=types or {},
            include_columns=list(types) if types else None,
        )
        try:
            return pacsv.open_csv(
                file,
                read_options=pacsv.ReadOptions(block_size=self._block_bytes),
                parse_options=pacsv.ParseOptions(delimiter=self._delimiter),
                convert_options=convert,
            )
        except _arrow_errors() as error:
            raise _file_error(error, file, f"Cannot read {file} as CSV") from error

    def _batches(self, file: str, types) -> Iterator:
        self._stamps.check(file)
        with self._open(file, types) as reader:
            batches = iter(reader)
            index = 0
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    return
                except _arrow_errors() as error:
                    raise SourceDataError(
                        f"{file}, block {index} (after about {index * self._block_bytes:,} bytes): "
                        f"{error}. If a column's type was guessed wrongly from the first block, "
                        "give it with dtypes={'column': 'float64'}."
                    ) from error
                yield batch, f"{file}, block {index}"
                index += 1

    def _count_rows(self) -> int:
        types = self._types or {}
        first = next(iter(types))
        return sum(
            batch.num_rows
            for file in self._files
            for batch, _ in self._batches(file, {first: types[first]})
        )

    def chunks(self) -> Iterator[Chunk]:
        for file in self._files:
            for batch, where in self._batches(file, self._types):
                yield _to_chunk(batch, self._outputs, self.specs, where)

    def head(self, rows: int) -> Chunk:
        return tuple(part[:rows] for part in next(self.chunks()))

    def __repr__(self) -> str:
        return f"CSVSource({self._files[0]!r}{', ...' if len(self._files) > 1 else ''})"


def _given_rows(num_rows) -> int:
    """``num_rows`` as given by the user: a positive integer, numpy integers included."""
    if isinstance(num_rows, bool) or not isinstance(num_rows, numbers.Integral):
        raise TypeError(
            f"num_rows must be an integer number of rows, got {type(num_rows).__name__} "
            f"{num_rows!r}. Leave it out to have the rows counted."
        )
    if num_rows < 1:
        raise ValueError(
            f"num_rows must be at least 1, got {num_rows}. Leave it out to have the rows counted."
        )
    return int(num_rows)


def _check_unique_names(names: Sequence[str], needed: Sequence[str], file: str) -> None:
    """Refuse streamed columns whose name the header gives more than once."""
    repeated = sorted({name for name in needed if names.count(name) > 1})
    if repeated:
        raise SourceDataError(
            f"{file}: the header names column(s) {', '.join(map(repr, repeated))} more than "
            "once, so which one to stream is ambiguous. Give every column its own name in the "
            "header, or stream only columns whose names are unique."
        )
