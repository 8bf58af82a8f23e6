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
"""Careless input to the readers: each refused with an error that says what is wrong."""

import numpy as np
import pandas as pd
import pytest

from pymc.exceptions import SourceDataError

from pymc_extras.streaming import CSVSource, DaskSource, HDF5Source, ParquetSource

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.compute")
pq = pytest.importorskip("pyarrow.parquet")
h5py = pytest.importorskip("h5py")
dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")


# --- Parquet ------------------------------------------------------------------------------------


def test_a_parquet_column_named_twice_is_named(tmp_path):
    table = pa.Table.from_arrays([pa.array([1.0]), pa.array([2.0]), pa.array([3])], ["x", "x", "y"])
    pq.write_table(table, tmp_path / "twice.parquet")
    with pytest.raises(
        SourceDataError, match=r"twice\.parquet names column\(s\) 'x' more than once"
    ):
        ParquetSource(tmp_path / "twice.parquet", columns=["y"])


@pytest.mark.parametrize("kind", [pa.int64(), pa.int32()], ids=["other-type", "same-type"])
def test_a_file_column_that_a_hive_folder_shadows_is_named(kind, tmp_path):
    (tmp_path / "year=2020").mkdir()
    table = pa.table({"year": pa.array([1999, 1998], kind), "y": [1.0, 2.0]})
    pq.write_table(table, tmp_path / "year=2020" / "a.parquet")
    # Of the same type, pyarrow silently streamed the folder's 2020 for the file's 1999.
    with pytest.raises(
        SourceDataError,
        match=r"a\.parquet: column\(s\) 'year' of the file are also given by its folder names "
        r"\(hive partitions such as year=value\).* partitioning=None",
    ):
        ParquetSource(tmp_path, columns=["year", "y"])
    source = ParquetSource(tmp_path, columns=["year", "y"], partitioning=None)
    np.testing.assert_array_equal(source.read_block(0)[0], [1999, 1998])


@pytest.mark.parametrize(
    "make_filter, match",
    [
        (lambda: pc.field("nope") > 1, r"No match for FieldRef\.Name\(nope\)"),
        (lambda: pc.field("x") > "a", r"no kernel matching input types \(double, string\)"),
    ],
    ids=["missing-column", "mismatched-type"],
)
def test_a_filter_that_does_not_fit_the_columns_is_named(make_filter, match, tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [1, 2]}), tmp_path / "data.parquet")
    with pytest.raises(
        SourceDataError,
        match=rf"filter .* cannot be applied to Parquet dataset .*{match}.*Its columns are: "
        r"x \(double\), y \(int64\)",
    ):
        ParquetSource(tmp_path / "data.parquet", columns=["y"], filter=make_filter())


# --- CSV ----------------------------------------------------------------------------------------


def test_a_utf16_csv_is_named_and_read_with_its_encoding(tmp_path):
    (tmp_path / "wide.csv").write_text("x,y\n1,2\n3,4\n", encoding="utf-16")
    with pytest.raises(
        SourceDataError, match=r"wide\.csv is UTF-16 text .* Pass encoding='utf-16'"
    ):
        CSVSource(tmp_path / "wide.csv")
    source = CSVSource(tmp_path / "wide.csv", encoding="utf-16")
    np.testing.assert_array_equal(next(source.chunks())[0], [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"encoding must name a text encoding, got 'nope'"):
        CSVSource(tmp_path / "wide.csv", encoding="nope")


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"delimiter": ""}, ValueError, r"delimiter must be one character .* got ''"),
        ({"delimiter": ",,"}, ValueError, r"delimiter must be one character .* got ',,'"),
        ({"delimiter": '"'}, ValueError, r"other than a quote or a line break, got '\"'"),
        ({"block_bytes": 1}, ValueError, r"block_bytes must be at least 4,096 \(4 KiB\), got 1"),
        ({"block_bytes": 2.5}, TypeError, r"block_bytes must be an integer number of bytes"),
        ({"dtypes": "complex128"}, SourceDataError, r"column 'x' cannot be read as complex128"),
        ({"dtypes": {"y": "U5"}}, SourceDataError, r"column 'y' cannot be read as <U5"),
        ({"dtypes": {"y": "nope"}}, TypeError, r"dtypes: 'nope' for column 'y' is not a dtype"),
        ({"dtypes": {"z": "int8"}}, SourceDataError, r"dtypes names column\(s\) 'z', which"),
    ],
    ids=[
        "empty-delimiter",
        "two-character-delimiter",
        "quote-delimiter",
        "tiny-block",
        "float-block",
        "complex-dtype",
        "text-dtype",
        "unknown-dtype",
        "unknown-column",
    ],
)
def test_csv_options_that_cannot_work_are_refused(options, error, match, tmp_path):
    (tmp_path / "data.csv").write_text("x,y\n1,2\n3,4\n")
    with pytest.raises(error, match=match):
        CSVSource(tmp_path / "data.csv", **options)


def test_a_csv_row_longer_than_a_block_names_block_bytes(tmp_path):
    (tmp_path / "long.csv").write_text("x,y\n" + "1" * 10_000 + ",2\n3,4\n")
    with pytest.raises(
        SourceDataError, match=r"longer than block_bytes=4,096: pass a larger block_bytes"
    ):
        CSVSource(tmp_path / "long.csv", block_bytes=4096)


# --- HDF5 and Dask ------------------------------------------------------------------------------


def test_an_hdf5_soft_link_loop_is_named_as_such(tmp_path):
    with h5py.File(tmp_path / "loop.h5", "w") as file:
        file["a"] = h5py.SoftLink("/b")
        file["b"] = h5py.SoftLink("/a")
        file["x"] = np.arange(10.0)
    with pytest.raises(
        SourceDataError,
        match=r"Dataset 'a' of '.*loop\.h5' is a link that HDF5 cannot follow .*too many links.*"
        r"soft links that lead to each other in a loop",
    ):
        HDF5Source(tmp_path / "loop.h5", "a")


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_a_dask_parquet_partition_corrupted_after_planning_names_partition_and_path(tmp_path):
    for i in range(2):
        pq.write_table(pa.table({"x": np.arange(10.0) + i}), tmp_path / f"part{i}.parquet")
    source = DaskSource(dd.read_parquet(tmp_path), scheduler="sync")
    with open(tmp_path / "part1.parquet", "r+b") as file:
        file.write(b"\0" * 300)
    with pytest.raises(
        SourceDataError,
        match=rf"Computing partition 1 of DataFrame 0 \(it reads '{tmp_path}'\) failed: OSError: "
        r".*A file it reads is corrupt, or changed after Dask planned the partitions",
    ) as caught:
        source.read_block(1)
    assert isinstance(caught.value.__cause__, OSError)
    np.testing.assert_array_equal(source.read_block(0)[0], np.arange(10.0)[:, None])


def test_other_errors_of_a_dask_partition_keep_their_type_and_name_the_partition():
    def fail(part):
        if part["x"].iloc[0] > 0:
            raise ZeroDivisionError("in the user's code")
        return part

    frame = dd.from_pandas(pd.DataFrame({"x": [0.0, 1.0]}), npartitions=2)
    failing = frame.map_partitions(fail, meta={"x": "float64"})
    source = DaskSource(failing, lengths=[1, 1], scheduler="sync")
    with pytest.raises(ZeroDivisionError, match=r"in the user's code") as caught:
        source.read_block(1)
    assert "While computing partition 1 of DataFrame 0." in caught.value.__notes__
