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
"""What Parquet footers, folder names and filters declare, checked before any row is read."""

import os

from collections.abc import Sequence

from pymc.exceptions import SourceDataError
from pymc.streaming.sources import check_max_rows

from pymc_extras.streaming.readers.arrow_columns import arrow_errors

__all__: list[str] = []  # helpers of the package: imported by name, not exported


def check_filter(dataset, filter, where: str) -> None:
    """Refuse a filter that names a missing column, or compares a column with the wrong type.

    pyarrow binds the filter to the schema without reading data; its own errors name neither
    the dataset nor its columns.

    Raises
    ------
    SourceDataError
        Naming the filter and the dataset's columns with their types.
    """
    import pyarrow as pa

    try:
        dataset.scanner(filter=filter, columns=[])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError) as error:
        columns = ", ".join(f"{field.name} ({field.type})" for field in dataset.schema)
        raise SourceDataError(
            f"filter {filter} cannot be applied to {where}: {' '.join(str(error).split())}. "
            f"Its columns are: "
            f"{columns}. Name columns it has, and compare each with values of its type (e.g. "
            "pc.field('year') >= 2020 for an integer column)."
        ) from error


def shadowed_columns(path: str, names: Sequence[str]) -> str:
    """The message for columns of a file that its folder names give too."""
    shown = ", ".join(map(repr, names))
    return (
        f"{path}: column(s) {shown} of the file are also given by its folder names (hive "
        f"partitions such as {names[0]}=value), and pyarrow would stream the folder's value "
        "in place of the file's. Rename the column or the folder, or pass partitioning=None "
        "to read the files' columns only."
    )


def check_column_names(files: Sequence[str], base: str | None, partitioning) -> None:
    """Say which file of a dataset pyarrow cannot read for its column names, if one is.

    Called when pyarrow could not merge the files' schemas, which it reports without naming
    the file or the reason: a column named twice in a file, or a column that a hive folder
    name gives too (with another type).

    Raises
    ------
    SourceDataError
        Naming the file and the columns.
    """
    import pyarrow.parquet as pq

    for file in files:
        try:
            names = pq.read_schema(file).names
        except arrow_errors():
            continue  # reported by the caller as unreadable
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise SourceDataError(
                f"{file} names column(s) {', '.join(map(repr, repeated))} more than once, "
                "which pyarrow's datasets cannot read. Write the file with a name of its own for "
                "every column."
            )
        if base is None or partitioning != "hive":
            continue
        folders = os.path.relpath(os.path.dirname(file), base).split(os.sep)
        keys = [folder.split("=", 1)[0] for folder in folders if "=" in folder]
        shadowed = sorted(set(keys) & set(names))
        if shadowed:
            raise SourceDataError(shadowed_columns(file, shadowed))


def check_row_counts(path: str, metadata, columns: Sequence[str]) -> None:
    """Refuse a footer whose row counts disagree with each other, or that no file could back.

    A row group's rows must equal the values of each of its streamed (flat) columns, and the
    file's rows the sum over its row groups: a footer edited to declare more rows than it holds
    fails one of these unless every count was edited alike, which the read of that row group
    then reports (:func:`crafted_row_count`).

    Raises
    ------
    SourceDataError
        Naming the file, the row group and the counts.
    """
    check_max_rows(metadata.num_rows, path)
    names = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    flat = {name: names.index(name) for name in columns if names.count(name) == 1}
    total = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        total += row_group.num_rows
        for name, column in flat.items():
            values = row_group.column(column).num_values
            if values != row_group.num_rows:
                raise SourceDataError(
                    f"{path}, row group {group}: the footer declares {row_group.num_rows:,} rows "
                    f"but {values:,} values of column {name!r}. The footer is corrupt or "
                    "crafted; the file cannot be read safely."
                )
    if total != metadata.num_rows:
        raise SourceDataError(
            f"{path}: the footer declares {metadata.num_rows:,} rows, but its row groups "
            f"{total:,}. The footer is corrupt or crafted; the file cannot be read safely."
        )


def crafted_row_count(where: str, declared: int, read: int) -> SourceDataError:
    """The error for a row group that holds other rows than its footer declares."""
    return SourceDataError(
        f"{where}: the footer declares {declared:,} rows, but the row group holds "
        f"{'at least ' if read > declared else ''}{read:,}, and the file has not changed since "
        "the source opened it. The footer is corrupt or crafted; the file cannot be read safely."
    )
