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
import itertools
import os
import tempfile
import threading

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pymc as pm
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from pymc.exceptions import SourceDataError
from pymc.streaming.batching import Batcher
from pymc.streaming.sources import ArraySource, as_source

from pymc_extras.streaming.readers import optional
from pymc_extras.streaming.readers.arrow_files import (
    ArrowIPCSource,
    CSVSource,
    FeatherSource,
    ParquetSource,
)
from tests.streaming.epoch_checks import assert_every_row_once_per_epoch


def table(n, start=0):
    """Row ids in x1, their negatives in x2, and y = id: alignment is checkable in any batch."""
    ids = np.arange(start, start + n)
    return pa.table({"x1": ids.astype(float), "x2": -ids.astype(float), "y": ids})


def write(kind, folder, n, *, files=1, block=None):
    """Write ``n`` rows as ``files`` files of blocks of ``block`` rows; return the path to read."""
    bounds = np.linspace(0, n, files + 1).astype(int)
    paths = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        part = table(b - a, a)
        path = os.path.join(folder, f"part{i}.{kind}")
        if kind == "parquet":
            pq.write_table(part, path, row_group_size=block or max(1, b - a))
        elif kind == "feather":
            feather.write_feather(part, path, chunksize=block or max(1, b - a))
        else:
            pacsv.write_csv(part, path)
        paths.append(path)
    return folder if files > 1 else paths[0]


READERS = {"parquet": ParquetSource, "feather": ArrowIPCSource, "csv": CSVSource}


def open_source(kind, path, **kwargs):
    return READERS[kind](path, columns=[["x1", "x2"], "y"], **kwargs)


def batches(source, batch_size, count, shuffle_buffer=0, seed=0):
    state = {"seed": seed, "epoch": 0, "offset": 0}
    batcher = Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)
    return [next(batcher)[0] for _ in range(count)]


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(list(READERS)),
    n_rows=st.integers(1, 400),
    files=st.integers(1, 3),
    block=st.integers(1, 90),
    batch_fraction=st.floats(0.01, 1.0),
    shuffle_buffer=st.sampled_from([0, 1, 50, 100_000]),
    seed=st.integers(0, 2**32),
)
def test_every_row_once_per_epoch_aligned(
    kind, n_rows, files, block, batch_fraction, shuffle_buffer, seed
):
    files = min(files, n_rows)
    batch_size = max(1, int(batch_fraction * n_rows))
    with tempfile.TemporaryDirectory() as folder:
        source = open_source(kind, write(kind, folder, n_rows, files=files, block=block))
        assert source.num_rows == n_rows
        state = {"seed": seed, "epoch": 0, "offset": 0}
        batcher = Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)
        assert_every_row_once_per_epoch(batcher, n_rows, batch_size, epochs=2)


@pytest.mark.parametrize("kind", ["parquet", "feather"])
def test_row_count_comes_from_metadata_and_blocks_are_visited_in_random_order(kind, tmp_path):
    path = write(kind, tmp_path, 2_000, files=2, block=100)
    source = open_source(kind, path)
    reads = []
    read_block = source.read_block
    source.read_block = lambda i: reads.append(i) or read_block(i)
    assert source.num_rows == 2_000 and source.block_rows == (100,) * 20
    assert not reads  # nothing read to know the size
    first, *_ = batches(source, 250, 8, shuffle_buffer=250, seed=1)
    # Sorted on disk, but the first batch draws from three whole blocks from anywhere.
    assert sorted(reads) == list(range(20)) and reads != list(range(20))
    assert len(np.unique(first[1] // 100)) == 3 and first[1].max() > 1_000


def test_parquet_directory_with_hive_partitions_and_filter(tmp_path):
    for year in (2020, 2021):
        folder = tmp_path / f"year={year}"
        folder.mkdir()
        pq.write_table(table(50, 100 * (year - 2020)), folder / "part.parquet", row_group_size=20)
    source = ParquetSource(tmp_path, columns={"X": ["x1", "year"], "y": "y"})
    X, y = next(source.chunks())
    assert source.num_rows == 100 and set(X[:, 1]) <= {2020, 2021}
    np.testing.assert_array_equal(X[:, 0], y)
    # Row groups larger than the buffer are read in pieces; the folder names fill "year".
    for X, y in batches(source, 5, 40, shuffle_buffer=10, seed=4):
        np.testing.assert_array_equal(X[:, 1], np.where(y < 100, 2020, 2021))
    only = ParquetSource(tmp_path, columns=["y"], filter=ds.field("year") == 2021)
    assert only.num_rows == 50
    np.testing.assert_array_equal(
        np.concatenate([c[0] for c in only.chunks()]), np.arange(100, 150)
    )
    late = ParquetSource(tmp_path, columns="y", filter=ds.field("x1") >= 130)
    assert late.num_rows == 20 and all((chunk[0] >= 130).all() for chunk in late.chunks())


def test_parquet_list_of_files_dataset_object_and_default_columns(tmp_path):
    paths = [write("parquet", tmp_path, 30), str(tmp_path / "other.parquet")]
    pq.write_table(table(10, 30), paths[1])
    X, _ = next(ParquetSource(paths, columns=[["x1"], "y"]).chunks())
    assert X.shape == (30, 1)
    (whole,) = ParquetSource(ds.dataset(paths)).head(5)
    assert whole.shape == (5, 3)
    # pm.Minibatch adapts an Arrow dataset directly.
    assert isinstance(as_source(ds.dataset(paths)), ParquetSource)


def test_feather_is_arrow_ipc_and_csv_types_are_fixed(tmp_path):
    assert FeatherSource is ArrowIPCSource
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(1000)))
    source = CSVSource(path, columns=["x", "y"], dtypes={"x": "float32"})
    assert [spec.dtype for spec in source.specs] == [np.float32, np.int64]
    assert source.num_rows == 1000 and CSVSource(path, num_rows=7).num_rows == 7


def fit_regression(source, seed=7, n=3_000):
    with pm.Model():
        X, y = pm.Minibatch(source, batch_size=100, streaming=True, random_seed=seed)
        beta = pm.Normal("beta", 0, 10, shape=2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("obs", X @ beta, sigma, observed=y)
        approx = pm.fit(n, random_seed=seed, progressbar=False)
    return approx


@pytest.mark.parametrize("kind", list(READERS))
def test_same_posterior_as_an_in_memory_array_source(kind, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 2))
    y = X @ [1.5, -0.5] + rng.normal(0, 0.5, 2_000)
    data = pa.table({"a": X[:, 0], "b": X[:, 1], "y": y})
    path = str(tmp_path / f"data.{kind}")
    if kind == "parquet":
        pq.write_table(data, path, row_group_size=250)
    elif kind == "feather":
        feather.write_feather(data, path, chunksize=250)
    else:
        pacsv.write_csv(data, path)
    from_file = fit_regression(READERS[kind](path, columns=[["a", "b"], "y"]))
    in_memory = fit_regression(ArraySource([X, y]))
    for name in ("mean", "std"):
        ours = getattr(from_file, name).eval()
        reference = getattr(in_memory, name).eval()
        np.testing.assert_allclose(ours, reference, atol=0.05)
    assert not reader_threads()


# Faults and bad input


def test_missing_and_non_numeric_columns(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"x": [1.0, 2.0], "name": ["a", "b"]}), path)
    with pytest.raises(SourceDataError, match=r"no column\(s\) 'z'.*The columns are: x, name"):
        ParquetSource(path, columns=["x", "z"])
    with pytest.raises(SourceDataError, match=r"column 'name' has type string, which is not num"):
        ParquetSource(path, columns=[["x", "name"]])
    with pytest.raises(SourceDataError, match=r"each output is a column name .* got 3"):
        ParquetSource(path, columns=["x", 3])


@pytest.mark.parametrize("statistics", [True, False], ids=["from-metadata", "while-reading"])
def test_nulls_are_reported_with_file_and_row_group(tmp_path, statistics):
    path = tmp_path / "data.parquet"
    values = pa.array([1.0] * 10 + [None] + [1.0] * 9)
    pq.write_table(pa.table({"x": values}), path, row_group_size=10, write_statistics=statistics)
    with pytest.raises(SourceDataError, match=r"data.parquet, row group 1: column 'x' has 1 null"):
        list(ParquetSource(path, columns="x").chunks())


@pytest.mark.parametrize("kind", ["parquet", "feather"])
def test_truncated_file_is_refused_at_construction(kind, tmp_path):
    path = write(kind, tmp_path, 100)
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) // 2)
    with pytest.raises(
        SourceDataError, match=rf"part0.{kind} is not a readable .*(magic bytes|Not an Arrow file)"
    ):
        open_source(kind, path)


def corrupt_second_row_group(path):
    """Overwrite the data pages of row group 1 with zeros, leaving the footer intact."""
    column = pq.ParquetFile(path).metadata.row_group(1).column(0)
    start = column.dictionary_page_offset or column.data_page_offset
    with open(path, "r+b") as file:
        file.seek(start)
        file.write(b"\xff" * column.total_compressed_size)


def test_corrupt_row_group_fails_the_fit_naming_file_and_row_group(tmp_path):
    path = tmp_path / "data.parquet"
    pq.write_table(table(400), path, row_group_size=100, compression="snappy")
    corrupt_second_row_group(path)
    source = ParquetSource(path, columns=[["x1", "x2"], "y"])
    with pytest.raises(
        SourceDataError, match=r"Reading .*data.parquet, row group 1 failed"
    ) as info:
        fit_regression(source, n=200)
    assert isinstance(info.value.__cause__, pa.ArrowException | OSError)
    assert not reader_threads()


@pytest.mark.parametrize("kind", list(READERS))
def test_file_that_changes_between_epochs_stops_the_fit(kind, tmp_path):
    path = write(kind, tmp_path, 300, block=100)
    source = open_source(kind, path)
    rewrite = {"parquet": pq.write_table, "csv": pacsv.write_csv, "feather": feather.write_feather}

    def change_the_file(approx, loss, i):
        if i == 2:
            rewrite[kind](table(500), path)

    with pytest.raises(SourceDataError, match=r"part0.* changed while it was being streamed"):
        with pm.Model():
            X, y = pm.Minibatch(source, batch_size=100, streaming=True, prefetch=0)
            pm.Normal("obs", X.sum(-1) * pm.Normal("b"), 1, observed=y)
            # One step per call: the callback changes the file between reads.
            pm.fit(50, callbacks=[change_the_file], progressbar=False, steps_per_call=1)
    assert not reader_threads()


@pytest.mark.parametrize("kind", ["parquet", "feather"])
def test_schemas_that_differ_between_files_are_refused(kind, tmp_path):
    write(kind, tmp_path, 20, files=2)
    other = table(5).drop_columns(["x2"]).append_column("x2", pa.array(["a"] * 5))
    name = tmp_path / f"part2.{kind}"
    pq.write_table(other, name) if kind == "parquet" else feather.write_feather(other, name)
    with pytest.raises(SourceDataError, match=r"part2.* column 'x2' has type string.* where"):
        open_source(kind, tmp_path)


def test_csv_value_that_does_not_fit_the_type_names_file_and_block(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x,y\n" + "".join(f"{i},1\n" for i in range(5000)) + "1.5,1\n")
    with pytest.raises(
        SourceDataError, match=r"data.csv, block \d+ .*invalid value '1.5'.* dtypes=\{'column'"
    ):
        CSVSource(path, columns=["x", "y"], block_bytes=4096)


def test_missing_paths_and_stream_format_ipc(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No such file or directory: '.*nowhere.parquet'"):
        ParquetSource(tmp_path / "nowhere.parquet")
    with pytest.raises(FileNotFoundError, match=r"has no \*.arrow or \*.feather or \*.ipc files"):
        ArrowIPCSource(tmp_path)
    path = tmp_path / "stream.arrow"
    with pa.ipc.new_stream(path, table(3).schema) as writer:
        writer.write_table(table(3))
    with pytest.raises(SourceDataError, match=r"stream.arrow is not a readable Arrow IPC file"):
        ArrowIPCSource(path)


def test_missing_pyarrow_names_the_package_and_extra(monkeypatch, tmp_path):
    def unavailable(module):
        raise ModuleNotFoundError(f"No module named {module!r}", name=module)

    monkeypatch.setattr(optional.importlib, "import_module", unavailable)
    with pytest.raises(
        ModuleNotFoundError,
        match=r"ParquetSource needs the package 'pyarrow'.*pymc-extras\[parquet\]",
    ):
        ParquetSource(tmp_path)


def test_row_groups_larger_than_the_buffer_are_decoded_a_piece_at_a_time(tmp_path):
    path = write("parquet", tmp_path, 3_000, block=3_000)
    source = open_source("parquet", path)
    source.read_block = None  # never read whole
    ids = np.concatenate([y for _, y in batches(source, 100, 60, shuffle_buffer=500, seed=3)])
    for epoch in (ids[:3_000], ids[3_000:]):
        np.testing.assert_array_equal(np.sort(epoch), np.arange(3_000))
    assert np.ptp(ids[:500]) < 500  # a window is one 500-row piece of the row group
