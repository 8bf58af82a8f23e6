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
import multiprocessing
import sys
import threading
import time

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming import get_stream
from pymc.streaming.batching import Batcher
from pymc.streaming.sources import BlockSource, to_chunk

from tests.streaming.epoch_checks import assert_every_row_once_per_epoch

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from pymc_extras.streaming.readers.dask_source import DaskSource

N = 600
RNG = np.random.default_rng(1)
X = RNG.normal(size=(N, 2))
Y = X @ [1.0, -2.0] + 0.5 + RNG.normal(size=N)
FRAME = pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "y": Y, "label": ["a", "b"] * (N // 2)})


class InMemoryBlocks(BlockSource):
    """The same partitions held in memory: the batcher must cut it exactly as the Dask source."""

    def __init__(self, blocks):
        self.blocks = [to_chunk(block) for block in blocks]
        self.block_rows = tuple(len(block[0]) for block in self.blocks)
        self.specs = DaskSource(da.from_array(X[:2]), da.from_array(Y[:2])).specs

    def read_block(self, index):
        return self.blocks[index]


def in_memory_blocks(rows):
    bounds = itertools.pairwise(np.cumsum((0, *rows)))
    return InMemoryBlocks([(X[a:b], Y[a:b]) for a, b in bounds])


def no_compute(*args, **kwargs):
    raise AssertionError("something was computed")


def batcher(source, batch_size, shuffle_buffer=0, seed=0):
    state = {"seed": seed, "epoch": 0, "offset": 0}
    return Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)


def regression(*sources, batch_size=50):
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(*sources, batch_size=batch_size, streaming=True)
        intercept = pm.Normal("intercept", 0, 10)
        beta = pm.Normal("beta", 0, 10, shape=2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X_mb @ beta, sigma, observed=y_mb)
    return model, get_stream(X_mb)


def fit_means(model, steps=400, seed=1):
    with model:
        approx = pm.fit(steps, random_seed=seed, progressbar=False)
    return approx.mean.eval()


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def test_array_partitions_are_its_row_chunks_and_nothing_is_computed_to_know_them():
    X_dask = da.from_array(X, chunks=((100, 250, 250), (1, 1)))
    with dask.config.set(scheduler=no_compute):
        source = DaskSource(X_dask, da.from_array(Y, chunks=(100, 250, 250)))
    assert source.block_rows == (100, 250, 250) and source.num_rows == N
    assert [(s.dtype, s.row_shape) for s in source.specs] == [(X.dtype, (2,)), (Y.dtype, ())]
    X_block, y_block = source.read_block(1)
    np.testing.assert_array_equal(X_block, X[100:350])
    np.testing.assert_array_equal(y_block, Y[100:350])


def test_dataframe_columns_map_to_outputs_and_lengths_are_counted_once():
    df = dd.from_pandas(FRAME, npartitions=4)
    source = DaskSource(df, columns=[["x1", "x2"], "y"])
    assert source.num_rows == N and len(source.block_rows) == 4
    assert [(s.dtype, s.row_shape) for s in source.specs] == [(X.dtype, (2,)), (Y.dtype, ())]
    rows = [np.concatenate(parts) for parts in zip(*source.chunks())]
    np.testing.assert_array_equal(rows[0], X)
    np.testing.assert_array_equal(rows[1], Y)


def test_given_lengths_and_head_compute_only_the_first_partition():
    computed = []

    def record(frame, partition_info=None):
        computed.append(partition_info["number"])
        return frame

    df = dd.from_pandas(FRAME, npartitions=3).map_partitions(record, meta=FRAME)
    source = DaskSource(df, columns=["y"], lengths=[200, 200, 200], scheduler="sync")
    assert computed == []
    np.testing.assert_array_equal(source.head(5)[0], Y[:5])
    assert computed == [0]


@pytest.mark.parametrize(
    "make, shapes",
    [
        (lambda: da.from_array(Y, chunks=200), [(200,)]),
        (lambda: da.from_array(X.reshape(N, 1, 2), chunks=(150, 1, 1)), [(150, 1, 2)]),
        (lambda: dd.from_pandas(FRAME[["x1", "y"]], npartitions=3), [(200, 2)]),
        (lambda: dd.from_pandas(FRAME, npartitions=3)["y"], [(200,)]),
        (lambda: da.from_array(Y, chunks=200)[da.from_array(Y, chunks=200) > 0], None),
    ],
    ids=["1-d-array", "3-d-array", "whole-dataframe", "series", "unknown-chunk-sizes"],
)
def test_collections_of_every_kind(make, shapes):
    source = DaskSource(make())
    if shapes is None:  # boolean indexing: chunk sizes unknown until computed
        assert source.num_rows == int((Y > 0).sum())
        np.testing.assert_array_equal(np.concatenate(next(zip(*source.chunks()))), Y[Y > 0])
    else:
        assert [part.shape for part in source.read_block(0)] == shapes


def test_minibatch_dispatches_a_single_collection_to_dask_source():
    y_mb = pm.Minibatch(da.from_array(Y, chunks=100), batch_size=10, streaming=True)
    assert isinstance(get_stream(y_mb).source, DaskSource)


def test_minibatch_reads_several_collections_as_one_source_of_aligned_partitions():
    _, y_mb = pm.Minibatch(
        da.from_array(np.column_stack([Y, -Y]), chunks=(100, 2)),
        da.from_array(Y, chunks=100),
        batch_size=10,
        streaming=True,
    )
    source = get_stream(y_mb).source
    assert isinstance(source, DaskSource) and len(source.block_rows) > 1  # not a zip


def test_aligned_collections_from_one_dataframe_and_an_array():
    df = dd.from_pandas(FRAME, npartitions=3)
    lengths = df.map_partitions(len).compute().tolist()
    y_dask = da.from_array(Y, chunks=(tuple(lengths),))
    source = DaskSource(df[["x1", "x2"]], y_dask)
    assert source.block_rows == tuple(lengths)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in source.chunks()]), Y)


def test_read_blocks_computes_a_window_in_one_call_per_kind_of_collection():
    calls = []

    def counting(dsk, keys, **kwargs):
        calls.append(keys)
        return dask.get(dsk, keys, **kwargs)

    df = dd.from_pandas(FRAME[["x1", "x2"]], npartitions=3)  # partitions of 200 rows
    source = DaskSource(df, da.from_array(Y, chunks=200), scheduler=counting)
    calls.clear()
    blocks = source.read_blocks([2, 0])
    assert len(calls) == 2  # one for the array, one for the DataFrame: never mixed
    for index, block in zip([2, 0], blocks):
        np.testing.assert_array_equal(block[0], X[200 * index : 200 * (index + 1)])
        np.testing.assert_array_equal(block[1], Y[200 * index : 200 * (index + 1)])


@st.composite
def chunkings(draw):
    n_rows = draw(st.integers(1, 200))
    cuts = sorted(draw(st.lists(st.integers(0, n_rows), max_size=8)))
    rows = tuple(np.diff([0, *cuts, n_rows]).tolist())
    return n_rows, rows


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunking=chunkings(),
    as_frame=st.booleans(),
    batch_fraction=st.floats(0.01, 1.0),
    shuffle_buffer=st.sampled_from([0, 1, 7, 64, 100_000]),
    seed=st.integers(0, 2**32),
)
def test_every_row_once_per_epoch_aligned(chunking, as_frame, batch_fraction, shuffle_buffer, seed):
    n_rows, rows = chunking
    ids = np.arange(n_rows)
    X_ids = da.from_array(np.column_stack([ids, -ids]).astype(float), chunks=(rows, 1))
    y_ids = da.from_array(ids, chunks=(rows,))
    if as_frame:  # a DataFrame and an array aligned by partition lengths
        X_ids = X_ids.to_dask_dataframe(columns=["a", "b"])
    source = DaskSource(X_ids, y_ids, scheduler="sync")
    assert source.num_rows == n_rows and source.block_rows == rows
    batch_size = max(1, int(batch_fraction * n_rows))
    batches = batcher(source, batch_size, shuffle_buffer, seed)
    assert_every_row_once_per_epoch(batches, n_rows, batch_size, epochs=2)


def test_partitions_are_visited_in_a_random_order_every_epoch():
    source = DaskSource(da.arange(1000, chunks=100), scheduler="sync")
    reads = []
    read_blocks = source.read_blocks
    source.read_blocks = lambda indices: reads.extend(indices) or read_blocks(indices)
    batches = batcher(source, 100, shuffle_buffer=250, seed=5)
    for _ in range(20):
        next(batches)
    first, second = reads[:10], reads[10:20]
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != list(range(10)) and first != second


def test_same_fit_as_the_same_partitions_in_memory_and_close_to_an_array_source():
    rows = (100, 250, 250)
    X_dask, y_dask = da.from_array(X, chunks=(rows, 2)), da.from_array(Y, chunks=(rows,))
    streamed = fit_means(regression(DaskSource(X_dask, y_dask))[0])
    in_memory = fit_means(regression(in_memory_blocks(rows))[0])
    np.testing.assert_array_equal(streamed, in_memory)  # the very same batches, step by step
    array_fit = fit_means(regression(X, Y)[0])
    np.testing.assert_allclose(streamed, array_fit, atol=0.15)


def test_an_error_inside_a_dask_task_reaches_pm_fit_with_its_type():
    def corrupt(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise FloatingPointError("partition 2 is corrupt")
        return block

    y_dask = da.from_array(Y, chunks=100).map_blocks(corrupt, dtype=Y.dtype)
    model, _ = regression(DaskSource(da.from_array(X, chunks=(100, 2)), y_dask))
    with pytest.raises(FloatingPointError, match="partition 2 is corrupt"):
        fit_means(model, steps=200)
    assert not reader_threads()


@pytest.mark.parametrize(
    "dtype, value",
    [("Int64", pd.NA), ("Float64", pd.NA), ("double[pyarrow]", None)],
    ids=["Int64", "Float64", "arrow-double"],
)
def test_nulls_are_reported_with_column_and_partition(dtype, value):
    frame = FRAME[["x1", "x2"]].assign(y=pd.array(np.arange(N), dtype=dtype))
    frame.loc[450, "y"] = value
    source = DaskSource(dd.from_pandas(frame, npartitions=3), columns=[["x1", "x2"], "y"])
    np.testing.assert_array_equal(source.read_block(0)[1], np.arange(200))
    with pytest.raises(SourceDataError, match=r"Partition 2 of DataFrame 0: column 'y' has 1 null"):
        fit_means(regression(source)[0], steps=100)


def bad_dataframe_cases():
    df = dd.from_pandas(FRAME.assign(when=pd.Timestamp(0), cat=FRAME.label.astype("category")), 3)
    return [
        ((df,), {"columns": [["x1", "x2"], "zz"]}, SourceDataError, r"no column\(s\) \['zz'\]. Its columns are \['x1', 'x2', 'y', 'label'"),
        ((df,), {"columns": [["x1", "label"], "y"]}, SourceDataError, "column 'label' has dtype .* not numeric"),
        ((df,), {"columns": ["cat"]}, SourceDataError, "column 'cat' has dtype category"),
        ((df,), {"columns": ["when"]}, SourceDataError, "column 'when' has dtype datetime64"),
        ((df,), {}, SourceDataError, "column 'label' has dtype .* not numeric"),
        ((df,), {"columns": "y"}, InvalidSourceError, "columns must be a list with one entry per output"),
        ((df,), {"columns": [[], "y"]}, SourceDataError, "an output of columns=.* has no columns"),
        ((df["y"],), {"columns": ["y"]}, InvalidSourceError, "columns= selects outputs from one Dask DataFrame"),
        ((df[["y"]],), {"lengths": [300, 300]}, SourceDataError, "lengths has 2 entries, but DataFrame 0 has 3 partitions"),
    ]  # fmt: skip


def bad_array_cases():
    x = da.from_array(X, chunks=(200, 2))
    return [
        ((), {}, InvalidSourceError, "needs at least one Dask array or DataFrame"),
        ((X,), {}, InvalidSourceError, "Collection 0 given to DaskSource is a ndarray, not a Dask"),
        ((da.from_array(np.array(["a", "b"])),), {}, SourceDataError, "dtype <U1, which is not numeric"),
        ((da.from_array(np.float64(1.0)),), {}, SourceDataError, "0-dimensional"),
        ((da.zeros((0, 2), chunks=1),), {}, SourceDataError, "has no rows"),
        ((x, da.from_array(Y, chunks=250)), {}, SourceDataError, "partition 0 has 200 rows in Array 0 but 250 in Array 1"),
        ((x, da.from_array(Y[:400], chunks=200)), {}, SourceDataError, "Array 0 has 3 partitions and Array 1 has 2"),
        ((x,), {"lengths": [100, 300, 200]}, SourceDataError, r"lengths=\(100, 300, 200\) disagrees with the chunks of Array 0"),
        ((x,), {"lengths": [-1, 1, 600]}, SourceDataError, "lengths must be row counts"),
        ((x,), {"columns": ["a"]}, InvalidSourceError, "columns= selects outputs from one Dask DataFrame"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    bad_dataframe_cases() + bad_array_cases(),
    ids=[
        "missing-column", "string-column", "category-column", "datetime-column",
        "string-column-of-whole-frame", "columns-as-a-string", "empty-output", "columns-on-series",
        "lengths-count", "no-collection", "numpy-array", "string-array", "scalar-array",
        "no-rows", "different-chunks", "different-lengths", "lengths-vs-chunks",
        "negative-lengths", "columns-on-array",
    ],
)  # fmt: skip
def test_bad_input_is_refused_at_construction(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        DaskSource(*args, **kwargs)


def test_a_partition_that_changes_length_is_reported():
    df = dd.from_pandas(FRAME[["y"]], npartitions=3)
    source = DaskSource(df, lengths=[100, 300, 200])
    with pytest.raises(SourceDataError, match="Partition 0 of DataFrame 0 has 200 rows, but 100"):
        source.read_block(0)


def test_missing_dask_names_the_package_and_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(
        ModuleNotFoundError, match=r"DaskSource needs the package 'dask'.*pymc-extras\[dask\]"
    ):
        DaskSource(object())


@pytest.fixture(scope="module")
def cluster():
    threads_before = {thread.ident for thread in threading.enumerate()}
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as local_cluster:
        yield local_cluster
    # Nothing of the cluster is left: no worker process, no thread but Dask's shared offload pool.
    assert multiprocessing.active_children() == []

    def left():
        return [
            thread.name
            for thread in threading.enumerate()
            if thread.ident not in threads_before and not thread.name.startswith("Dask-Offload")
        ]

    for _ in range(100):  # the scheduler's profiling thread notices the close within a second
        if not left():
            break
        time.sleep(0.05)
    assert left() == []


@pytest.mark.parametrize("kind", ["array", "dataframe"])
def test_streams_from_a_local_cluster(cluster, kind):
    # Defined here, so that it travels by value: the workers cannot import this test module.
    def computed_on_a_worker(block):
        distributed.get_worker()  # raises ValueError("No worker found") outside the cluster
        return block

    if kind == "array":
        X_dask = da.from_array(X, chunks=(150, 2)).map_blocks(computed_on_a_worker, dtype=X.dtype)
        y_dask = da.from_array(Y, chunks=150).map_blocks(computed_on_a_worker, dtype=Y.dtype)
        collections, options = (X_dask, y_dask), {}
    else:
        df = dd.from_pandas(FRAME, npartitions=4).map_partitions(computed_on_a_worker, meta=FRAME)
        collections, options = (df,), {"columns": [["x1", "x2"], "y"]}
    with distributed.Client(cluster):  # the default client, looked up from the reader thread
        source = DaskSource(*collections, **options)
        streamed = fit_means(regression(source)[0], steps=300)
    in_memory = fit_means(regression(in_memory_blocks(source.block_rows))[0], steps=300)
    np.testing.assert_array_equal(streamed, in_memory)
    assert not reader_threads()


def test_a_task_failing_on_the_cluster_reaches_pm_fit_with_its_type(cluster):
    def corrupt(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 2:
            raise FloatingPointError("partition 2 is corrupt")
        return block

    y_dask = da.from_array(Y, chunks=100).map_blocks(corrupt, dtype=Y.dtype)
    with distributed.Client(cluster, set_as_default=False) as client:
        source = DaskSource(da.from_array(X, chunks=(100, 2)), y_dask, scheduler=client)
        with pytest.raises(FloatingPointError, match="partition 2 is corrupt"):
            fit_means(regression(source)[0], steps=200)
    assert not reader_threads()


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")
def test_partitions_of_a_parquet_dataset_are_counted_as_they_are_read(tmp_path):
    # Dask fuses several Parquet files into one partition when it reads few of their columns:
    # counting rows on one column gave 2 partitions of 2,000 rows for 4 files of 1,000.
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    paths = []
    for number in range(4):
        table = pa.table({name: rng.normal(size=1_000) for name in ("a", "b", "c", "d", "y")})
        paths.append(str(tmp_path / f"part-{number}.parquet"))
        pq.write_table(table, paths[-1])
    frame = dd.read_parquet(paths)
    source = DaskSource(frame, columns=[["a", "b", "c", "d"], "y"], scheduler="sync")
    assert source.block_rows == (1_000,) * 4
    assert [len(source.read_block(i)[0]) for i in range(4)] == [1_000] * 4
