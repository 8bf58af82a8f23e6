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
"""Arrow tables to a source's outputs: columns, types, nulls and files, for the Arrow readers."""

import os

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pymc.exceptions import SourceDataError
from pymc.streaming.casting import check_cast
from pymc.streaming.sources import Chunk, OutputSpec

from pymc_extras.streaming.readers.files import access_error, find_files, readable

__all__: list[str] = []  # helpers of the package: imported by name, not exported

Columns = str | Sequence[str | Sequence[str]] | Mapping[str, str | Sequence[str]] | None
"""Which columns make which outputs: one name is a 1-D output, a list of names a 2-D output."""


@dataclass(frozen=True)
class Output:
    names: tuple[str, ...]
    matrix: bool  # a list of columns: one 2-D output, even with one name


def outputs(columns: Columns, available: Sequence[str]) -> tuple[Output, ...]:
    """Parse ``columns``; ``None`` is every column as one 2-D output."""
    if columns is None:
        return (Output(tuple(available), True),)
    if isinstance(columns, str):
        columns = [columns]
    elif isinstance(columns, Mapping):
        columns = list(columns.values())
    outputs = []
    for output in columns:
        if isinstance(output, str):
            outputs.append(Output((output,), False))
        elif isinstance(output, Sequence) and output and all(isinstance(n, str) for n in output):
            outputs.append(Output(tuple(output), True))
        else:
            raise SourceDataError(
                f"columns: each output is a column name (a 1-D output) or a non-empty list of "
                f"names (one 2-D output), got {output!r}. For example "
                "columns=[['x1', 'x2'], 'y'] gives a matrix X and a vector y."
            )
    if not outputs:
        raise SourceDataError("columns is empty: name at least one column to stream.")
    return tuple(outputs)


def column_names(outputs: Sequence[Output]) -> list[str]:
    """Every column the outputs read, once each, in order."""
    return list(dict.fromkeys(name for output in outputs for name in output.names))


def check_schema(schema, outputs: Sequence[Output], where: str) -> None:
    """Refuse missing and non-numeric columns before anything is read."""
    import pyarrow as pa

    names = schema.names
    missing = [name for name in column_names(outputs) if name not in names]
    if missing:
        raise SourceDataError(
            f"{where}: no column(s) {', '.join(map(repr, missing))}. The columns are: "
            f"{', '.join(names)}."
        )
    for name in column_names(outputs):
        kind = schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise SourceDataError(
                f"{where}: column {name!r} has type {kind}, which is not numeric. Stream numeric "
                "columns only: convert this one (e.g. to category codes) in the file, or leave "
                "it out of columns."
            )


def specs_of(schema, outputs: Sequence[Output]) -> tuple[OutputSpec, ...]:
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
        values = columns.column(name).to_numpy(zero_copy_only=False)
        # Columns of other types share the matrix's dtype only where no value changes (int64
        # above 2**53 beside a float column would be rounded): checked by its extremes.
        check_cast(
            values,
            dtype,
            f"{where}: column {name!r}",
            "Stream it as an output of its own (columns=[[...], 'name']), or store it in the "
            "file with a type that holds its values beside the other columns.",
        )
        matrix[:, j] = values
    return matrix


def to_chunk(table, outputs: Sequence[Output], specs: Sequence[OutputSpec], where: str) -> Chunk:
    """Arrow table → one numpy array per output, 2-D outputs in row-major order."""
    parts = []
    for output, spec in zip(outputs, specs):
        if not output.matrix:
            parts.append(_column(table, output.names[0], where).astype(spec.dtype, copy=False))
            continue
        parts.append(_matrix(table, output.names, spec.dtype, where))
    return tuple(parts)


def find_paths(path, suffix: str | tuple[str, ...] | None, kind: str) -> list[str]:
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
    _check_each_file_once(files)
    return files


def _check_each_file_once(files: Sequence[str]) -> None:
    """Refuse a file named twice (``[folder, folder/a.parquet]``): its rows would count twice."""
    seen: dict[tuple[int, int], str] = {}
    for file in files:
        status = os.stat(file)
        key = (status.st_dev, status.st_ino)
        if key in seen:
            same = "" if seen[key] == file else f" (as {seen[key]!r} and as {file!r})"
            raise SourceDataError(
                f"The paths name the file {file!r} twice{same}, so its rows would be read twice "
                "in every pass. Name each file once: a folder, or the files in it, not both."
            )
        seen[key] = file


def file_error(error: BaseException, path: str, message: str) -> Exception:
    """The error to raise for a failed read of ``path``: a clear one when access was refused."""
    clear = access_error(error, path)
    return clear if clear is not None else SourceDataError(f"{message}: {error}")


def arrow_errors() -> tuple[type[Exception], ...]:
    """What pyarrow raises on a bad file; call it before a ``try``, not in its ``except``.

    An ``except`` clause is evaluated when a generator is closed too, as late as interpreter
    shutdown, when nothing can be imported any more.
    """
    import pyarrow as pa

    return pa.ArrowException, OSError


def check_same_columns(schema, first, outputs: Sequence[Output], file: str, first_file: str):
    for name in column_names(outputs):
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
