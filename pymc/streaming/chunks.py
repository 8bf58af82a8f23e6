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
"""Chunks: aligned arrays of rows, one per output, from what a source yields.

A chunk is numeric, its outputs have the same rows, and every chunk of a source has the first
one's dtypes and row shapes; numpy arrays, pandas and Arrow data convert to one, and a dtype is
only ever cast where no value changes (:mod:`pymc.streaming.casting`).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pymc.exceptions import SourceDataError
from pymc.streaming.casting import cast_exactly, check_cast

__all__ = ["MAX_ROWS", "Chunk", "OutputSpec", "check_max_rows", "to_chunk"]

Chunk = tuple[np.ndarray, ...]
"""Aligned arrays, one per output, all with the same number of rows (leading dimension)."""

_NUMERIC_KINDS = "biuf"

MAX_ROWS = 2**53
"""The most rows a source may have: the likelihood is scaled by ``rows / batch_size`` in
float64, which holds every integer up to ``2**53`` exactly and rounds larger ones (and int64
overflows at ``2**63``, flipping the scale's sign). A file declaring more is crafted or corrupt."""


def check_max_rows(rows: int, what: str) -> int:
    """Refuse a row count above :data:`MAX_ROWS`, naming ``what`` declared it.

    Raises
    ------
    SourceDataError
        If ``rows`` is larger than ``2**53``.
    """
    if rows > MAX_ROWS:
        raise SourceDataError(
            f"{what} declares {rows:,} rows, more than 2**53 = {MAX_ROWS:,}, the most rows a "
            "stream can scale its likelihood by exactly (a float64 holds integers only up to "
            "2**53). No real dataset is that large: the count is corrupt or crafted."
        )
    return rows


@dataclass(frozen=True)
class OutputSpec:
    """What every chunk of one output looks like: its dtype and its shape after the row axis."""

    dtype: np.dtype
    row_shape: tuple[int, ...]


def _is_arrow(obj) -> bool:
    """Whether ``obj`` speaks the Arrow PyCapsule protocol (pyarrow, polars, ... arrays/tables)."""
    return hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__")


def _arrow_to_numpy(obj, where: str) -> np.ndarray:
    """Convert an Arrow array, chunked array, record batch or table; refuse nulls."""
    if type(obj).__module__.split(".")[0] != "pyarrow":
        import pyarrow as pa  # other Arrow libraries hand their data over through the protocol

        obj = pa.table(obj) if hasattr(obj, "__arrow_c_stream__") else pa.array(obj)
    columns = obj.columns if hasattr(obj, "columns") else [obj]
    names = obj.column_names if hasattr(obj, "column_names") else [None]
    arrays = []
    for name, column in zip(names, columns):
        if column.null_count:
            label = f"column {name!r}" if name is not None else "the array"
            raise SourceDataError(
                f"{where}: {label} has {column.null_count} null value(s). Streaming minibatches "
                "need complete numeric data: drop or impute the nulls in the source."
            )
        arrays.append(np.asarray(column.to_numpy(zero_copy_only=False)))
    if hasattr(obj, "columns"):
        if not arrays:
            return np.empty((obj.num_rows, 0))
        _check_columns_fit(list(zip(names, arrays)), where)
        return np.column_stack(arrays)
    return arrays[0]


def _check_columns_fit(columns: list[tuple[object, np.ndarray]], where: str) -> None:
    """Refuse columns whose values would change in the common dtype of a matrix.

    int64 above ``2**53`` beside a float column, or uint64 above ``2**63`` beside a signed one:
    the error names the column and a value.
    """
    dtypes = [values.dtype for _, values in columns]
    if len(set(dtypes)) < 2 or not all(dtype.kind in _NUMERIC_KINDS for dtype in dtypes):
        return  # one dtype, nothing cast; non-numeric data is refused as such later
    common = np.result_type(*dtypes)
    for name, values in columns:
        check_cast(
            values,
            common,
            f"{where}: column {name!r}",
            "its values cannot share a matrix with the other columns. Stream this column as an "
            "output of its own, or convert it in the source to a dtype that holds its values.",
        )


def _native(array: np.ndarray) -> np.ndarray:
    """``array`` in the machine's byte order, which PyTensor needs (a copy if it is not)."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def _pandas_to_numpy(obj: pd.DataFrame | pd.Series, where: str) -> np.ndarray:
    """Convert a DataFrame or Series; refuse missing values of nullable and Arrow dtypes.

    ``to_numpy`` turns ``pd.NA`` of a nullable integer column into NaN or into objects, which
    would either reach the model as NaN or be refused as non-numeric: say what it is instead.
    """
    frame = obj.to_frame() if isinstance(obj, pd.Series) else obj
    dtypes = []
    for j, (name, dtype) in enumerate(frame.dtypes.items()):
        if isinstance(dtype, np.dtype):
            dtypes.append(dtype)
            continue
        missing = int(frame.iloc[:, j].isna().sum())
        if missing:
            label = "the Series" if isinstance(obj, pd.Series) else f"column {name!r}"
            raise SourceDataError(
                f"{where}: {label} ({dtype}) has {missing} missing value(s) (pd.NA). Streaming "
                "minibatches need complete numeric data: drop or impute them (e.g. "
                "df.dropna() or df.fillna(...)) before streaming."
            )
        numpy_dtype = getattr(dtype, "numpy_dtype", None)
        dtypes.append(np.dtype(numpy_dtype) if numpy_dtype is not None else np.dtype(object))
    if dtypes and all(dtype.kind in _NUMERIC_KINDS for dtype in dtypes):
        if len(set(dtypes)) > 1:
            columns = [
                (name, frame.iloc[:, j].to_numpy(dtype=dtype))
                for j, (name, dtype) in enumerate(zip(frame.columns, dtypes))
            ]
            _check_columns_fit(columns, where)
        return obj.to_numpy(dtype=np.result_type(*dtypes))
    return obj.to_numpy()


def _to_array(obj, where: str) -> np.ndarray:
    """Convert one output of a chunk to a numpy array with rows on the first axis."""
    if isinstance(obj, np.ndarray):
        array = obj
    elif isinstance(obj, pd.DataFrame | pd.Series):
        array = _pandas_to_numpy(obj, where)
    elif _is_arrow(obj):
        array = _arrow_to_numpy(obj, where)
    elif isinstance(obj, list | range) or np.isscalar(obj):
        array = np.asarray(obj)
    else:
        raise SourceDataError(
            f"{where}: expected a numpy array, a pandas DataFrame or Series, or a pyarrow array, "
            f"record batch or table, got {type(obj).__name__}."
        )
    if array.ndim == 0:
        raise SourceDataError(
            f"{where}: got a scalar; every output needs a leading axis of rows (shape (rows, ...))."
        )
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise SourceDataError(
            f"{where}: data of dtype {array.dtype} is not numeric. Convert it to numbers (e.g. "
            "category codes or dummy columns) before streaming."
        )
    return array


def to_chunk(obj, where: str = "chunk") -> Chunk:
    """Normalise one chunk: an array, a tuple of arrays, a DataFrame or an Arrow batch/table.

    Raises
    ------
    SourceDataError
        If the chunk is not numeric or its outputs have different numbers of rows.
    """
    if isinstance(obj, tuple):
        parts = tuple(
            _native(_to_array(part, f"{where}, output {i}")) for i, part in enumerate(obj)
        )
    else:
        parts = (_native(_to_array(obj, where)),)
    rows = {len(part) for part in parts}
    if len(rows) > 1:
        lengths = ", ".join(str(len(part)) for part in parts)
        raise SourceDataError(
            f"{where}: ragged chunk, its outputs have {lengths} rows. Each chunk must hold the same "
            "rows of every output."
        )
    return parts


def _spec_of(chunk: Chunk) -> tuple[OutputSpec, ...]:
    return tuple(OutputSpec(part.dtype.newbyteorder("="), part.shape[1:]) for part in chunk)


def _conform(chunk: Chunk, specs: tuple[OutputSpec, ...], where: str) -> Chunk:
    """Check a chunk against the specs learnt from the first one; cast dtypes of the same kind."""
    if len(chunk) != len(specs):
        raise SourceDataError(
            f"{where}: has {len(chunk)} output(s) where the first chunk had {len(specs)}."
        )
    conformed = []
    for i, (part, spec) in enumerate(zip(chunk, specs)):
        if part.shape[1:] != spec.row_shape:
            raise SourceDataError(
                f"{where}, output {i}: rows of shape {part.shape[1:]} where the first chunk had "
                f"{spec.row_shape}. Ragged data cannot be batched; pad or reshape it in the source."
            )
        if part.dtype != spec.dtype:
            if not np.can_cast(part.dtype, spec.dtype, casting="same_kind"):
                raise SourceDataError(
                    f"{where}, output {i}: dtype {part.dtype} where the first chunk had "
                    f"{spec.dtype}. Give every chunk the same dtype."
                )
            part = cast_exactly(
                part,
                spec.dtype,
                f"{where}, output {i}",
                "Give every chunk the same dtype, wide enough for all of the data (e.g. "
                f"chunk.astype(np.{part.dtype})).",
                target=f"the first chunk's dtype {spec.dtype}, which every chunk is cast to",
            )
        conformed.append(part)
    return tuple(conformed)
