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

import os

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pymc.exceptions import SourceDataError

from pymc.streaming.sources import BlockSource, Chunk, OutputSpec, Source
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


def _paths(path, suffix: str | tuple[str, ...]) -> list[str]:
    """Files named by a path, a list of paths, or a directory (its files ending in ``suffix``)."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    files = []
    for entry in map(os.fspath, paths):
        if os.path.isdir(entry):
            found = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(entry)
                for name in names
                if name.endswith(suffix)
            )
            if not found:
                wanted = " or ".join(
                    f"*{end}" for end in (suffix if isinstance(suffix, tuple) else (suffix,))
                )
                raise FileNotFoundError(f"The directory {entry!r} has no {wanted} files.")
            files.extend(found)
        elif os.path.exists(entry):
            files.append(entry)
        else:
            raise FileNotFoundError(f"No such file or directory: {entry!r}.")
    if not files:
        raise FileNotFoundError("No files to read: the list of paths is empty.")
    return files


class _FileStamps:
    """Size and modification time of each file when the source opened it."""

    def __init__(self, paths: Sequence[str]):
        self._stamps = {path: self._stamp(path) for path in paths}

    @staticmethod
    def _stamp(path: str) -> tuple[int, int]:
        stat = os.stat(path)
        return stat.st_size, stat.st_mtime_ns

    def check(self, path: str) -> None:
        """Raise if ``path`` changed since the source was opened: its rows would be wrong."""
        try:
            now = self._stamp(path)
        except FileNotFoundError as error:
            raise SourceDataError(
                f"{path} was removed while it was being streamed. Keep the files of a source in "
                "place until the fit ends."
            ) from error
        if now != self._stamps[path]:
            raise SourceDataError(
                f"{path} changed while it was being streamed (size {self._stamps[path][0]} → "
                f"{now[0]} bytes). Rows already read would no longer match the file; write new "
                "data to new files and open a new source."
            )


def _return_freed_memory() -> None:
    """Ask pyarrow's memory pool to return the pages it has freed to the system now.

    pyarrow's default allocator (mimalloc) keeps a thread's freed pages until that thread
    allocates again after a delay, and each Parquet read frees its decoded pages, dictionaries
    and read buffers at once. Returned every few reads, they no longer add up: the peak RSS of
    a streaming fit over 10M rows went from 400–430 MB to about 380 MB. Other pyarrow work in
    the process may find pages it kept for reuse returned too, and fault them in again.
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
        keeps memory of its own: by default one reader thread decodes, returning what it frees
        every few reads, which bounds memory best. A fit rarely needs more: one thread decodes
        several times the rows per second that a step consumes.

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
    ):
        ds = import_optional("pyarrow.dataset", extra="parquet", reader="ParquetSource")
        if isinstance(path, ds.Dataset):
            dataset = path
        else:
            if isinstance(path, str | os.PathLike) and os.path.isdir(path):
                target = os.fspath(path)
            else:
                files = _paths(path, ".parquet")
                target = files[0] if len(files) == 1 else files
            try:
                dataset = ds.dataset(target, format="parquet", partitioning=partitioning)
            except _arrow_errors() as error:
                raise SourceDataError(
                    f"{target if isinstance(target, str) else path} is not a readable Parquet "
                    f"file or dataset (truncated or corrupt?): {error}"
                ) from error
        self._dataset = dataset
        self._filter = filter
        self._use_threads = use_threads
        self._bytes_since_return = 0
        where = f"Parquet dataset {path!r:.100}"
        self._outputs = _outputs(columns, dataset.schema.names)
        _check_schema(dataset.schema, self._outputs, where)
        self.specs = _specs(dataset.schema, self._outputs)
        self._columns = _column_names(self._outputs)
        self._scan_options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        self._blocks: list[tuple[object, str, int]] = []
        rows = []
        for fragment in dataset.get_fragments(filter=filter):
            for piece, count in self._row_groups(fragment):
                self._blocks.append((piece, fragment.path, piece.row_groups[0].id))
                rows.append(count)
        if not self._blocks:
            raise SourceDataError(
                f"{where} has no rows{' that pass the filter' if filter is not None else ''}."
            )
        self.block_rows = tuple(rows)
        # Without a filter, a piece of a row group has a known number of rows.
        self.splits_blocks = filter is None
        self._stamps = _FileStamps(sorted({path for _, path, _ in self._blocks}))
        self._describe = where

    def _row_groups(self, fragment):
        """The fragment's row groups with their row counts, after checking its footer."""
        try:
            schema = fragment.physical_schema
            pieces = fragment.split_by_row_group(self._filter, schema=self._dataset.schema)
            metadata = fragment.metadata
        except _arrow_errors() as error:
            raise SourceDataError(
                f"{fragment.path} is not a readable Parquet file (truncated or corrupt?): {error}"
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
        """Every file holds the columns with the dataset's types; statistics show no nulls."""
        partition_columns = set(self._dataset.schema.names) - set(schema.names)
        expected = self._dataset.schema
        for name in self._columns:
            if name in partition_columns:
                continue
            if name not in schema.names:
                raise SourceDataError(
                    f"{fragment.path} has no column {name!r}, which other files of the dataset "
                    "have. Every file must hold the streamed columns."
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
        try:
            file = pq.ParquetFile(
                self._dataset.filesystem.open_input_file(path),
                pre_buffer=False,
                buffer_size=PARQUET_READ_BUFFER_BYTES,
            )
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
            raise SourceDataError(f"Reading {where} failed (corrupt file?): {error}") from error
        if buffered:
            piece = self._piece(pa.Table.from_batches(pending), constants, where)
            pending = None
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
        """Count a read's bytes; return freed pages once enough have been decoded since."""
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
            raise SourceDataError(f"Reading {where} failed (corrupt file?): {error}") from error
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
        pa = import_optional("pyarrow", extra="parquet", reader="ArrowIPCSource")
        import pyarrow.ipc

        files = _paths(path, (".arrow", ".feather", ".ipc"))
        self._readers = {}
        self._blocks: list[tuple[str, int]] = []
        rows = []
        schema = None
        for file in files:
            try:
                # Through a memory map, a batch's row count costs no read of its data.
                with pa.memory_map(file) as mapped:
                    mapped_reader = pyarrow.ipc.open_file(mapped)
                    counts = [
                        mapped_reader.get_batch(i).num_rows
                        for i in range(mapped_reader.num_record_batches)
                    ]
                reader = pyarrow.ipc.open_file(pa.OSFile(file))
            except _arrow_errors() as error:
                raise SourceDataError(
                    f"{file} is not a readable Arrow IPC file (truncated, corrupt, or the IPC "
                    f"stream format rather than the file format?): {error}"
                ) from error
            if schema is None:
                schema = reader.schema
                self._outputs = _outputs(columns, schema.names)
                _check_schema(schema, self._outputs, file)
                self.specs = _specs(schema, self._outputs)
            else:
                _check_same_columns(reader.schema, schema, self._outputs, file, files[0])
            self._readers[file] = reader
            self._blocks.extend((file, i) for i in range(len(counts)))
            rows.extend(counts)
        self.block_rows = tuple(rows)
        self._stamps = _FileStamps(files)
        self._describe = files[0] if len(files) == 1 else f"{len(files)} files in {files[0]!r}..."

    def read_block(self, index: int) -> Chunk:
        file, batch = self._blocks[index]
        self._stamps.check(file)
        where = f"{file}, record batch {batch}"
        try:
            table = self._readers[file].get_batch(batch)
        except _arrow_errors() as error:
            raise SourceDataError(f"Reading {where} failed (corrupt file?): {error}") from error
        return _to_chunk(table, self._outputs, self.specs, where)

    def __repr__(self) -> str:
        return f"ArrowIPCSource({self._describe!r}, {len(self.block_rows)} record batches)"


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
        self._files = _paths(path, ".csv")
        self._delimiter = delimiter
        self._block_bytes = block_bytes
        self._types = None
        with self._open(self._files[0], None) as reader:
            schema = reader.schema
        self._outputs = _outputs(columns, schema.names)
        needed = _column_names(self._outputs)
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
        self._stamps = _FileStamps(self._files)
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
            raise SourceDataError(f"Cannot read {file} as CSV: {error}") from error

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
        first = next(iter(self._types))
        return sum(
            batch.num_rows
            for file in self._files
            for batch, _ in self._batches(file, {first: self._types[first]})
        )

    def chunks(self) -> Iterator[Chunk]:
        for file in self._files:
            for batch, where in self._batches(file, self._types):
                yield _to_chunk(batch, self._outputs, self.specs, where)

    def head(self, rows: int) -> Chunk:
        return tuple(part[:rows] for part in next(self.chunks()))

    def __repr__(self) -> str:
        return f"CSVSource({self._files[0]!r}{', ...' if len(self._files) > 1 else ''})"
