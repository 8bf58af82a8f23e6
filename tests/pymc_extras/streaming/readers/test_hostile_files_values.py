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
"""Declared sizes no file backs, and values that would change on the way in."""

import struct

from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError
from pymc.streaming import get_stream

from pymc_extras.streaming import (
    ArrowIPCSource,
    CSVSource,
    DaskSource,
    HDF5Source,
    NpySource,
    ParquetSource,
    ZarrSource,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")
pacsv = pytest.importorskip("pyarrow.csv")
h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")
dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")

ROWS = 1237  # a count no other field of a small footer holds


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def craft_parquet_rows(path, claimed, which=None):
    """Make the footer of ``path`` declare ``claimed`` rows where it says ``ROWS``.

    In Thrift's compact protocol, the footer's i64 fields that follow the field before them
    (``FileMetaData.num_rows``, then each ``ColumnMetaData.num_values``, then
    ``RowGroup.num_rows``) are the byte 0x16 and a zigzag varint. ``which`` picks occurrences
    in that order; all by default.
    """
    data = Path(path).read_bytes()
    length = struct.unpack("<i", data[-8:-4])[0]
    footer = data[-8 - length : -8]
    old, new = b"\x16" + varint(ROWS << 1), b"\x16" + varint(claimed << 1)
    parts = footer.split(old)
    which = range(len(parts) - 1) if which is None else which
    crafted = parts[0]
    for i, part in enumerate(parts[1:]):
        crafted += (new if i in which else old) + part
    Path(path).write_bytes(
        data[: -8 - length] + crafted + struct.pack("<i", len(crafted)) + b"PAR1"
    )


def parquet(path):
    table = pa.table({"x": np.arange(ROWS, dtype=float), "y": np.arange(ROWS)})
    pq.write_table(table, path)
    return path


# --- declared sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize("claimed", [2**53 + 1, 2**62])
def test_a_parquet_footer_declaring_more_rows_than_float64_counts_is_refused(claimed, tmp_path):
    craft_parquet_rows(parquet(tmp_path / "crafted.parquet"), claimed)
    with pytest.raises(SourceDataError, match=rf"crafted\.parquet declares {claimed:,} rows"):
        ParquetSource(tmp_path / "crafted.parquet", columns=["x", "y"])


def test_a_parquet_footer_whose_row_counts_disagree_is_refused_when_built(tmp_path):
    # The file's and the row group's num_rows edited, not the columns' num_values.
    craft_parquet_rows(parquet(tmp_path / "crafted.parquet"), 10**9, which=[0, 3])
    assert pq.read_metadata(tmp_path / "crafted.parquet").num_rows == 10**9
    with pytest.raises(
        SourceDataError,
        match=r"crafted\.parquet, row group 0: the footer declares 1,000,000,000 rows but "
        r"1,237 values of column 'x'\. The footer is corrupt or crafted",
    ):
        ParquetSource(tmp_path / "crafted.parquet", columns=["x", "y"])


def test_a_parquet_footer_declaring_rows_its_pages_lack_is_named_at_the_read(tmp_path):
    craft_parquet_rows(parquet(tmp_path / "crafted.parquet"), 10**9)  # every count alike
    source = ParquetSource(tmp_path / "crafted.parquet", columns=["x", "y"])
    assert source.num_rows == 10**9  # only decoding the pages can tell
    message = (
        r"crafted\.parquet, row group 0: the footer declares 1,000,000,000 rows, but the row "
        r"group holds 1,237, and the file has not changed since the source opened it\. The "
        r"footer is corrupt or crafted"
    )
    with pytest.raises(SourceDataError, match=message):
        source.read_block(0)
    with pytest.raises(SourceDataError, match=message):
        list(source.iter_block(0, 500))
    x, _ = pm.Minibatch(source, batch_size=100, streaming=True, prefetch=0)
    stream = get_stream(x)
    with pytest.raises(SourceDataError, match=message):  # what a fit sees, not "data changed"
        stream.next_batch()


def test_a_filtered_parquet_source_decodes_before_trusting_a_footer(tmp_path):
    import pyarrow.compute as pc

    craft_parquet_rows(parquet(tmp_path / "crafted.parquet"), 10**9)  # every count alike
    # A filtered source counts the rows that pass; a scan would first allocate 8 GB for the
    # rows the footer declares.
    with pytest.raises(SourceDataError, match=r"declares 1,000,000,000 rows, but the row group"):
        ParquetSource(tmp_path / "crafted.parquet", columns=["x", "y"], filter=pc.field("x") > -1)


def test_reading_a_crafted_parquet_footer_allocates_nothing_from_it(tmp_path):
    # In a child process that may map 3 GB: the footer declares 10^11 rows (800 GB of x).
    import subprocess
    import sys
    import textwrap

    craft_parquet_rows(parquet(tmp_path / "crafted.parquet"), 10**11)
    code = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, resource.RLIM_INFINITY))
        import pyarrow.compute as pc
        from pymc.exceptions import SourceDataError
        from pymc_extras.streaming import ParquetSource
        path = {str(tmp_path / "crafted.parquet")!r}
        for make, read in [
            (lambda: ParquetSource(path, columns=["x", "y"]), lambda s: s.read_block(0)),
            (lambda: ParquetSource(path, columns=["x"], filter=pc.field("x") > -1), None),
        ]:
            try:
                source = make()
                read(source)
            except SourceDataError as error:
                assert "corrupt or crafted" in str(error), error
            else:
                raise AssertionError("no error")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


def declaring(kind, folder, rows):
    """A few hundred bytes that declare ``rows`` rows."""
    if kind == "npy":
        with open(folder / "big.npy", "wb") as file:
            header = {"descr": "<f8", "fortran_order": False, "shape": (rows, 0)}
            np.lib.format.write_array_header_1_0(file, header)
        return lambda: NpySource(folder / "big.npy")
    if kind == "hdf5":
        with h5py.File(folder / "big.h5", "w") as file:
            file.create_dataset("x", shape=(rows,), chunks=(4096,), dtype="f8")
        return lambda: HDF5Source(folder / "big.h5", "x")
    zarr.create_array(folder / "big.zarr", shape=(rows,), chunks=(4096,), dtype="f8")
    return lambda: ZarrSource(folder / "big.zarr")


@pytest.mark.parametrize("kind", ["npy", "hdf5", "zarr"])
def test_an_array_file_declaring_more_than_2_53_rows_is_refused(kind, tmp_path):
    (tmp_path / "crafted").mkdir()
    (tmp_path / "exact").mkdir()
    make = declaring(kind, tmp_path / "crafted", 2**63 - 1)  # a few hundred bytes
    with pytest.raises(
        SourceDataError, match=r"declares 9,223,372,036,854,775,807 rows, more than 2\*\*53"
    ):
        make()
    exact = declaring(kind, tmp_path / "exact", 2**53)()  # the most rows that scale exactly
    assert exact.num_rows == 2**53


def test_csv_num_rows_above_2_53_is_refused(tmp_path):
    (tmp_path / "data.csv").write_text("x\n1\n2\n")
    with pytest.raises(ValueError, match=r"num_rows must be at most 2\*\*53"):
        CSVSource(tmp_path / "data.csv", num_rows=2**64)


def test_dask_lengths_above_2_53_are_refused():
    frame = dd.from_pandas(pd.DataFrame({"x": [1.0, 2.0]}), npartitions=1)
    with pytest.raises(SourceDataError, match=r"declares 18,446,744,073,709,551,616 rows"):
        DaskSource(frame, lengths=[2**64])


# --- values that would change -------------------------------------------------------------------


def mixed_table():
    """An int64 column above 2**53 beside a float column: a float64 matrix would round it."""
    return pa.table({"big": [2**53 + 1, 2], "x": [0.5, 1.0]})


@pytest.mark.parametrize("kind", ["parquet", "ipc", "csv"])
def test_an_int64_above_2_53_in_a_matrix_with_floats_is_refused(kind, tmp_path):
    path = tmp_path / f"data.{kind}"
    if kind == "parquet":
        pq.write_table(mixed_table(), path)
        source = ParquetSource(path, columns=[["big", "x"]])
    elif kind == "ipc":
        feather.write_feather(mixed_table(), path)
        source = ArrowIPCSource(path, columns=[["big", "x"]])
    else:
        pacsv.write_csv(mixed_table(), path)
        source = CSVSource(path, columns=[["big", "x"]])
    with pytest.raises(
        SourceDataError,
        match=r"column 'big': 1 value\(s\) of dtype int64 do not fit the dtype float64 \(e\.g\. "
        r"9007199254740993 would become 9007199254740992\.0\)",
    ):
        next(source.chunks())


def test_a_matrix_of_ints_and_floats_that_fit_is_read_exactly(tmp_path):
    table = pa.table({"i": pa.array([2**53, -3], pa.int64()), "j": pa.array([7, 8], pa.int32())})
    pq.write_table(table.append_column("x", pa.array([0.5, 1.5])), tmp_path / "data.parquet")
    chunk = next(ParquetSource(tmp_path / "data.parquet", columns=[["i", "j", "x"]]).chunks())
    np.testing.assert_array_equal(chunk[0], [[2.0**53, 7, 0.5], [-3, 8, 1.5]])


def lying(frame, meta):
    """A Dask DataFrame whose metadata says ``meta`` over partitions that hold ``frame``."""
    return dd.from_pandas(frame, npartitions=1).map_partitions(lambda part: part, meta=meta)


@pytest.mark.parametrize(
    "frame, meta, match",
    [
        (
            pd.DataFrame({"x": [0.75, 2.0]}),
            {"x": "int64"},
            r"column 'x': 1 value\(s\) of dtype float64 do not fit the dtype int64 \(e\.g\. "
            r"0\.75 would become 0\)",
        ),
        (
            pd.DataFrame({"x": ["a", "b"]}),
            {"x": "float64"},
            r"column 'x' holds non-numeric values of dtype object \(e\.g\. 'a'\) where the dtype "
            r"float64 was expected",
        ),
        (
            pd.DataFrame({"x": [1 + 2j, 3j]}),
            {"x": "float64"},
            r"column 'x' holds complex values of dtype complex128 \(e\.g\. \(1\+2j\)\)",
        ),
        (
            pd.DataFrame({"x": np.array([2**63 + 5, 1], np.uint64)}),
            {"x": "int64"},
            r"column 'x': 1 value\(s\) of dtype uint64 do not fit the dtype int64 \(e\.g\. "
            r"9223372036854775813 would become -9223372036854775803\)",
        ),
        (
            pd.DataFrame({"x": [2**53 + 1, 2], "z": [0.5, 1.0]}),
            None,
            r"column 'x': 1 value\(s\) of dtype int64 do not fit the dtype float64",
        ),
    ],
    ids=["float-as-int", "text-as-float", "complex-as-float", "uint64-as-int64", "int64-2**53"],
)
def test_dask_partitions_whose_values_their_metadata_would_change_are_refused(frame, meta, match):
    collection = dd.from_pandas(frame, npartitions=1) if meta is None else lying(frame, meta)
    source = DaskSource(collection)
    with pytest.raises(SourceDataError, match=rf"Partition 0 of DataFrame 0: {match}"):
        source.read_block(0)


def test_a_dask_array_whose_dtype_would_change_its_values_is_refused():
    halves = da.from_array(np.arange(4.0), chunks=2).map_blocks(lambda b: b + 0.5, dtype=np.int64)
    with pytest.raises(SourceDataError, match=r"dtype float64 do not fit the dtype int64 .*0\.5"):
        DaskSource(halves).read_block(0)
    exact = lying(pd.DataFrame({"x": [1.0, 2.0]}), {"x": "int64"})  # floats that are integers
    np.testing.assert_array_equal(DaskSource(exact).read_block(0)[0], [[1], [2]])


@pytest.mark.parametrize("kind", ["parquet", "ipc", "csv"])
def test_a_file_named_twice_is_refused(kind, tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / f"a.{kind}"
    if kind == "parquet":
        pq.write_table(mixed_table(), path)
        make = ParquetSource
    elif kind == "ipc":
        path = path.with_suffix(".arrow")
        feather.write_feather(mixed_table(), path)
        make = ArrowIPCSource
    else:
        pacsv.write_csv(mixed_table(), path)
        make = CSVSource
    with pytest.raises(SourceDataError, match=r"name the file '.*a\.\w+' twice, .* Name each file"):
        make([tmp_path / "data", path], columns=["x"])
    with pytest.raises(SourceDataError, match=r"twice, so its rows would be read twice"):
        make([path, path], columns=["x"])
