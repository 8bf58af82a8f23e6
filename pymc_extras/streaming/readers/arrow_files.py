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
"""Readers of columnar files through pyarrow: Parquet datasets and Arrow IPC (Feather) files.

``CSVSource`` lives in :mod:`pymc_extras.streaming.readers.csv_files` and is named here too, where it
was first defined.
"""

import os

from collections.abc import Generator
from typing import Any

import numpy as np

from pymc.exceptions import SourceDataError
from pymc.streaming.sources import BlockSource, Chunk

from pymc_extras.streaming.readers.arrow_columns import (
    Columns,
    arrow_errors,
    check_same_columns,
    check_schema,
    column_names,
    file_error,
    find_paths,
    outputs,
    specs_of,
    to_chunk,
)
from pymc_extras.streaming.readers.csv_files import CSVSource
from pymc_extras.streaming.readers.files import FileStamps
from pymc_extras.streaming.readers.optional import import_optional
from pymc_extras.streaming.readers.parquet_metadata import (
    check_column_names,
    check_filter,
    check_row_counts,
    crafted_row_count,
    shadowed_columns,
)

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


def _return_freed_memory() -> None:
    """Ask pyarrow's default memory pool to return the pages it has freed to the system now.

    Process-wide: the pool is shared by all pyarrow work in the process, which may then find
    pages it kept for reuse returned, and fault them in again. Only with
    ``ParquetSource(..., release_freed_memory=True)``.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


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
            files = find_paths(path, None if directory else ".parquet", "Parquet")
            target: Any = files[0] if len(files) == 1 and not directory else files
            base = os.fspath(path) if directory else None
            try:
                dataset = ds.dataset(
                    target, format="parquet", partitioning=partitioning, partition_base_dir=base
                )
            except arrow_errors() as error:
                # Schemas that cannot be merged: say why, if a file's columns tell.
                check_column_names(files, base, partitioning)
                shown = target if isinstance(target, str) else os.fspath(path)
                raise file_error(
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
        self._outputs = outputs(columns, dataset.schema.names)
        check_schema(dataset.schema, self._outputs, where)
        self.specs = specs_of(dataset.schema, self._outputs)
        self._columns = column_names(self._outputs)
        self._scan_options = ds.ParquetFragmentScanOptions(pre_buffer=False)
        if filter is not None:
            check_filter(dataset, filter, where)
        # Each file is stamped before its footer is read: a change after that is noticed.
        self._stamps = FileStamps([], layout="parquet")
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
        self._describe = where

    def _row_groups(self, fragment):
        """The fragment's row groups with their row counts, after checking its footer."""
        self._stamps.add(fragment.path)
        try:
            schema = fragment.physical_schema
            pieces = fragment.split_by_row_group(self._filter, schema=self._dataset.schema)
            metadata = fragment.metadata
        except arrow_errors() as error:
            raise file_error(
                error,
                fragment.path,
                f"{fragment.path} is not a readable Parquet file (truncated or corrupt?)",
            ) from error
        self._check_fragment(fragment, schema, metadata)
        for piece in pieces:
            if self._filter is None:
                yield piece, piece.row_groups[0].num_rows
            else:
                # A scan allocates for the rows the footer declares before it decodes any: a
                # crafted count must be found by decoding first, a bounded batch at a time.
                row_group = piece.row_groups[0]
                self._check_declared_rows(fragment.path, row_group.id, row_group.num_rows)
                # Only the filter's columns are read. Not Scanner.count_rows: on a row group of a
                # partition the filter selects whole, it counts the whole file (pyarrow 26).
                scanner = piece.scanner(
                    schema=self._dataset.schema, filter=self._filter, columns=[]
                )
                yield piece, scanner.to_table().num_rows

    def _check_declared_rows(self, path: str, group: int, declared: int) -> None:
        """Decode one column of a row group in bounded batches: it holds the rows it declares.

        Memory is one batch of one column, whatever the footer says.
        """
        import pyarrow.parquet as pq

        where = f"{path}, row group {group}"
        decoded = 0
        try:
            with self._dataset.filesystem.open_input_file(path) as handle:
                file = pq.ParquetFile(
                    handle, pre_buffer=False, buffer_size=PARQUET_READ_BUFFER_BYTES
                )
                first = file.schema_arrow.names[:1]
                batches = file.iter_batches(
                    batch_size=PARQUET_DECODE_ROWS, row_groups=[group], columns=first
                )
                for batch in batches:
                    decoded += batch.num_rows
                    if decoded > declared:
                        break
        except arrow_errors() as error:
            self._stamps.check(path)
            raise file_error(error, path, f"Reading {where} failed (corrupt file?)") from error
        if decoded != declared:
            self._raise_row_count(path, where, declared, decoded)

    def _check_fragment(self, fragment, schema, metadata) -> None:
        """Every file holds the columns with the dataset's types; statistics show no nulls.

        A streamed column that a file lacks is a fault, unless the file's folder names give it
        (a hive partition ``key=value``): only then does pyarrow fill it in.
        """
        import pyarrow as pa
        import pyarrow.dataset as ds

        partition_columns = set(ds.get_partition_keys(fragment.partition_expression))
        shadowed = sorted(partition_columns & set(schema.names))
        if shadowed:
            raise SourceDataError(shadowed_columns(fragment.path, shadowed))
        check_row_counts(fragment.path, metadata, self._columns)
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
            kind = schema.field(name).type
            if kind != expected.field(name).type:
                numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind)
                raise SourceDataError(
                    f"{fragment.path}: column {name!r} has type {kind}"
                    f"{'' if numeric or pa.types.is_boolean(kind) else ', which is not numeric,'}"
                    f" where the dataset has {expected.field(name).type}. Write every file with "
                    "the same schema."
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
        where = f"{path}, row group {group}"
        declared, decoded = self.block_rows[index], 0
        pending, buffered = [], 0
        errors = arrow_errors()
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
                decoded += batch.num_rows
                batch = None  # pending holds it; see below
                if decoded > declared:
                    self._raise_row_count(path, where, declared, decoded)
                while buffered >= rows:
                    table = pa.Table.from_batches(pending)
                    pending, buffered = table.slice(rows).to_batches(), buffered - rows
                    piece = self._piece(table.slice(0, rows), constants, where)
                    # Once nothing holds the decoded rows, a return of freed pages in
                    # _count_decoded includes them: 8 MB less at the peak.
                    table = None
                    self._count_decoded(piece)
                    # Checked after decoding, one stat per piece: a file that changed before
                    # or during the read never yields a piece, nor mixes old rows with new.
                    self._stamps.check(path)
                    yield piece
        except errors as error:
            self._stamps.check(path)  # a file changed under the read is not corrupt
            raise file_error(error, path, f"Reading {where} failed (corrupt file?)") from error
        except Exception:
            self._stamps.check(path)  # e.g. a row group the file no longer has
            raise
        finally:
            if handle is not None:
                handle.close()
        if decoded != declared:
            self._raise_row_count(path, where, declared, decoded)
        if buffered:
            piece = self._piece(pa.Table.from_batches(pending), constants, where)
            pending = []
            self._count_decoded(piece)
            self._stamps.check(path)
            yield piece

    def _raise_row_count(self, path: str, where: str, declared: int, read: int) -> None:
        """A row group of other rows than its footer declared: changed, or crafted."""
        self._stamps.check(path)
        raise crafted_row_count(where, declared, read)

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
        return to_chunk(table, self._outputs, self.specs, where)

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
        if self._filter is None and not set(self._columns) <= set(self._partition_values(piece)):
            # Decoded a bounded piece at a time and checked against the footer as it goes: a
            # whole-table read would allocate for the rows a crafted footer declares.
            pieces = list(self.iter_block(index, PARQUET_DECODE_ROWS))
            if not pieces:  # a row group of no rows
                return tuple(np.empty((0, *spec.row_shape), spec.dtype) for spec in self.specs)
            return tuple(np.concatenate(parts) for parts in zip(*pieces))
        where = f"{path}, row group {group}"
        try:
            table = piece.to_table(
                schema=self._dataset.schema,
                columns=self._columns,
                filter=self._filter,
                use_threads=self._use_threads,
                fragment_scan_options=self._scan_options,
            )
        except arrow_errors() as error:
            self._stamps.check(path)  # a file changed under the read is not corrupt
            raise file_error(error, path, f"Reading {where} failed (corrupt file?)") from error
        except Exception:
            self._stamps.check(path)
            raise
        if table.num_rows != self.block_rows[index]:
            self._raise_row_count(path, where, self.block_rows[index], table.num_rows)
        self._stamps.check(path)  # after the read: rows of a file that changed are not returned
        chunk = to_chunk(table, self._outputs, self.specs, where)
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
        files = find_paths(path, (".arrow", ".feather", ".ipc"), "Arrow IPC")
        # Stamped before their footers are read: a change after that is noticed.
        self._stamps = FileStamps(files, layout="arrow")
        self._blocks: list[tuple[str, int]] = []
        rows = []
        schema = None
        for file in files:
            file_schema, counts = _ipc_batch_rows(file)
            if schema is None:
                schema = file_schema
                self._outputs = outputs(columns, schema.names)
                check_schema(schema, self._outputs, file)
                self.specs = specs_of(schema, self._outputs)
                self._columns = column_names(self._outputs)
            else:
                check_same_columns(file_schema, schema, self._outputs, file, files[0])
            self._blocks.extend((file, i) for i in range(len(counts)))
            rows.extend(counts)
        if not sum(rows):
            raise SourceDataError(
                f"{files[0] if len(files) == 1 else f'The {len(files)} files in {path!r}'} "
                "hold no rows. Check the path, or write the data first."
            )
        self.block_rows = tuple(rows)
        self._describe = files[0] if len(files) == 1 else f"{len(files)} files in {files[0]!r}..."

    def read_block(self, index: int) -> Chunk:
        """Read record batch ``index``, fully validated before any array is built from it.

        Each read opens its file and closes it again, so the source holds no file open
        between reads, however many files it streams.
        """
        import pyarrow as pa
        import pyarrow.ipc

        file, batch = self._blocks[index]
        where = f"{file}, record batch {batch}"
        try:
            with pa.OSFile(file) as handle:
                table = pyarrow.ipc.open_file(handle).get_batch(batch).select(self._columns)
            # Lengths, offsets and buffers checked against each other: a batch whose header
            # claims more rows than its buffers hold would otherwise be read past their end.
            table.validate(full=True)
        except arrow_errors() as error:
            self._stamps.check(file)  # a file changed under the read is not corrupt
            raise file_error(
                error, file, f"Reading {where} failed (corrupt or crafted file?)"
            ) from error
        except Exception:
            self._stamps.check(file)  # e.g. a record batch the file no longer has
            raise
        self._stamps.check(file)  # after the read: rows of a file that changed are not returned
        if table.num_rows != self.block_rows[index]:
            raise SourceDataError(
                f"{where} has {table.num_rows} rows, but had {self.block_rows[index]} when the "
                "source was opened. The file changed while it was being streamed."
            )
        return to_chunk(table, self._outputs, self.specs, where)

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
    except arrow_errors() as error:
        raise file_error(
            error,
            file,
            f"{file} is not a readable Arrow IPC file (truncated, corrupt, or the IPC stream "
            "format rather than the file format?)",
        ) from error


FeatherSource = ArrowIPCSource
"""Feather v2 files are Arrow IPC files: the same reader."""
