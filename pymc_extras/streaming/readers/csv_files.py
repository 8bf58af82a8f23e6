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
"""CSV files as a source, parsed by pyarrow's multithreaded streaming reader."""

import numbers

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from pymc.exceptions import SourceDataError
from pymc.streaming.sources import MAX_ROWS, Chunk, Source

from pymc_extras.streaming.readers.arrow_columns import (
    Columns,
    arrow_errors,
    check_schema,
    column_names,
    file_error,
    find_paths,
    outputs,
    specs_of,
    to_chunk,
)
from pymc_extras.streaming.readers.files import FileStamps
from pymc_extras.streaming.readers.optional import import_optional

__all__ = ["CSVSource"]

CSV_BLOCK_BYTES = 1 << 24
"""Bytes of CSV text parsed per read (16 MiB): about 200,000 rows of ten numbers."""

MIN_CSV_BLOCK_BYTES = 1 << 12
"""The smallest ``block_bytes`` (4 KiB): the header and every row must fit in one block."""

_WIDE_ENCODINGS = {
    b"\xff\xfe\x00\x00": "utf-32",
    b"\x00\x00\xfe\xff": "utf-32",
    b"\xff\xfe": "utf-16",
    b"\xfe\xff": "utf-16",
}
"""Byte order marks of text that pyarrow's CSV parser, which reads UTF-8, cannot parse."""


class CSVSource(Source):
    """Stream CSV files with pyarrow's multithreaded streaming parser.

    CSV cannot be read at random, so rows are shuffled within the shuffle window only: on disk
    order survives at the scale of the window. Prefer Parquet for data sorted on disk.

    Parameters
    ----------
    path : str, path-like or list of them
        A file, a directory (its ``*.csv`` files) or a list of files with the same header.
    columns : str, list or dict, optional
        The outputs, as for :class:`~pymc_extras.streaming.ParquetSource`. Default: every column
        as one 2-D output.
    dtypes : dict or dtype, optional
        Column types, e.g. ``{"y": "int64"}`` or one dtype for all. Columns not given take the
        type pyarrow infers from the first block of the first file, and keep it in every later
        block and epoch, so a column cannot change type halfway.
    num_rows : int, optional
        Rows in all the files. When not given, they are counted at construction, which parses
        the files once.
    delimiter : str, default ","
        The field delimiter: one character, not a quote or a line break.
    block_bytes : int, default CSV_BLOCK_BYTES
        Bytes of text parsed per read (16 MiB), at least 4 KiB, and more than the longest row.
        Larger blocks parse faster and hold more memory.
    encoding : str, default "utf8"
        The files' text encoding. Files in another (``"utf-16"``, ``"latin-1"``) are decoded
        by Python's codec before parsing, several times slower than UTF-8.

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
        encoding: str = "utf8",
    ):
        pa = import_optional("pyarrow", extra="parquet", reader="CSVSource")
        if num_rows is not None:
            num_rows = _given_rows(num_rows)
        self._delimiter = _checked_delimiter(delimiter)
        self._block_bytes = _checked_block_bytes(block_bytes)
        self._encoding = _checked_encoding(encoding)
        self._files = find_paths(path, ".csv", "CSV")
        # Stamped before anything is parsed: a file changed after that is noticed.
        self._stamps = FileStamps(self._files)
        self._types = None
        first = self._files[0]
        with self._open(first, None) as reader:
            schema = reader.schema
            try:
                first_batch = next(iter(reader), None)
            except arrow_errors() as error:
                raise SourceDataError(f"{first}, block 0: {error}") from error
        if first_batch is None or not first_batch.num_rows:
            raise SourceDataError(
                f"{first} has a header and no rows. CSVSource learns the columns' types from the "
                "first rows of the first file: write the data, or leave this file out."
            )
        self._outputs = outputs(columns, schema.names)
        needed = column_names(self._outputs)
        _check_unique_names(schema.names, needed, first)
        missing = [name for name in needed if name not in schema.names]
        if not missing and dtypes is not None:
            given = _checked_dtypes(dtypes, needed, schema.names, first)
            fields = {
                name: pa.from_numpy_dtype(given[name]) if name in given else schema.field(name).type
                for name in schema.names
            }
            schema = pa.schema(fields)
        check_schema(schema, self._outputs, self._files[0])
        self._types = {name: schema.field(name).type for name in needed}
        self.specs = specs_of(schema, self._outputs)
        self.num_rows = num_rows if num_rows is not None else self._count_rows()

    def _open(self, file: str, types):
        import pyarrow.csv as pacsv

        convert = pacsv.ConvertOptions(
            column_types=types or {},
            include_columns=list(types) if types else None,
        )
        if self._encoding == "utf8":
            _check_utf8(file)
        try:
            return pacsv.open_csv(
                file,
                read_options=pacsv.ReadOptions(
                    block_size=self._block_bytes, encoding=self._encoding
                ),
                parse_options=pacsv.ParseOptions(delimiter=self._delimiter),
                convert_options=convert,
            )
        except arrow_errors() as error:
            self._stamps.check(file)  # a file changed under the read is not corrupt
            raise file_error(
                error, file, f"Cannot read {file} as CSV{self._block_hint(error)}"
            ) from error

    def _block_hint(self, error: BaseException) -> str:
        if "block" not in str(error):
            return ""
        return (
            f" (a row or the header may be longer than block_bytes={self._block_bytes:,}: "
            "pass a larger block_bytes)"
        )

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
                except arrow_errors() as error:
                    self._stamps.check(file)
                    raise SourceDataError(
                        f"{file}, block {index} (after about {index * self._block_bytes:,} bytes): "
                        f"{error}{self._block_hint(error)}. If a column's type was guessed "
                        "wrongly from the first block, give it with dtypes={'column': 'float64'}."
                    ) from error
                # Parsed from the file as it was opened: text appended or rewritten while the
                # file is read (one stat per block) is never delivered as rows.
                self._stamps.check(file)
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
        delivered = 0
        for file in self._files:
            for batch, where in self._batches(file, self._types):
                delivered += batch.num_rows
                if delivered > self.num_rows:
                    raise SourceDataError(
                        f"{where}: the files hold more than the {self.num_rows:,} rows this "
                        "source counted (or was given as num_rows) when it was built. The "
                        "files changed, or num_rows is wrong: build the source again."
                    )
                yield to_chunk(batch, self._outputs, self.specs, where)

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
    if num_rows > MAX_ROWS:
        raise ValueError(
            f"num_rows must be at most 2**53 = {MAX_ROWS:,}, got {num_rows:,}: a larger count "
            "would scale the likelihood wrongly. Leave it out to have the rows counted."
        )
    return int(num_rows)


def _checked_delimiter(delimiter) -> str:
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '\r\n"':
        raise ValueError(
            f"delimiter must be one character other than a quote or a line break, got "
            f"{delimiter!r}. For example delimiter=';' or delimiter='\\t'."
        )
    return delimiter


def _checked_block_bytes(block_bytes) -> int:
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, numbers.Integral):
        raise TypeError(
            f"block_bytes must be an integer number of bytes, got {type(block_bytes).__name__} "
            f"{block_bytes!r}."
        )
    if block_bytes < MIN_CSV_BLOCK_BYTES:
        raise ValueError(
            f"block_bytes must be at least {MIN_CSV_BLOCK_BYTES:,} (4 KiB), got {block_bytes:,}: "
            "the header and every row must fit in one block. The default, 16 MiB, suits most "
            "files."
        )
    return int(block_bytes)


def _checked_encoding(encoding) -> str:
    import codecs

    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError) as error:
        raise ValueError(
            f"encoding must name a text encoding, got {encoding!r}. For example "
            "encoding='utf-16' or encoding='latin-1'."
        ) from error
    return "utf8" if name == "utf-8" else name


def _check_utf8(file: str) -> None:
    """Refuse a file that starts with the byte order mark of UTF-16 or UTF-32.

    pyarrow parses UTF-8 only, and reports such a file as a wrong number of columns.
    """
    with open(file, "rb") as handle:
        start = handle.read(4)
    for mark, name in _WIDE_ENCODINGS.items():
        if start.startswith(mark):
            raise SourceDataError(
                f"{file} is {name.upper()} text (it starts with a {name.upper()} byte order "
                f"mark), which the CSV parser does not read as it is. Pass encoding={name!r}, "
                "or convert the file to UTF-8 once (faster to stream)."
            )


def _checked_dtypes(dtypes, needed: Sequence[str], names: Sequence[str], file: str) -> dict:
    """``dtypes`` as numpy dtypes of named columns: real numbers, and columns the file has."""
    given = dtypes if isinstance(dtypes, Mapping) else dict.fromkeys(needed, dtypes)
    unknown = [name for name in given if name not in names]
    if unknown:
        raise SourceDataError(
            f"dtypes names column(s) {', '.join(map(repr, unknown))}, which {file} does not "
            f"have. Its columns are: {', '.join(names)}."
        )
    checked = {}
    for name, dtype in given.items():
        try:
            checked[name] = np.dtype(dtype)
        except TypeError as error:
            raise TypeError(
                f"dtypes: {dtype!r} for column {name!r} is not a dtype. Give numpy dtypes or "
                "their names, e.g. dtypes={'y': 'int64'}."
            ) from error
        if checked[name].kind not in "biuf":
            raise SourceDataError(
                f"dtypes: column {name!r} cannot be read as {checked[name]}: streaming needs "
                "real numbers (bool, integers or floats). Give e.g. 'float64', or leave the "
                "column out of columns."
            )
    return checked


def _check_unique_names(names: Sequence[str], needed: Sequence[str], file: str) -> None:
    """Refuse streamed columns whose name the header gives more than once."""
    repeated = sorted({name for name in needed if names.count(name) > 1})
    if repeated:
        raise SourceDataError(
            f"{file}: the header names column(s) {', '.join(map(repr, repeated))} more than "
            "once, so which one to stream is ambiguous. Give every column its own name in the "
            "header, or stream only columns whose names are unique."
        )
