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
"""Full-data passes mapped over the partitions of a Dask collection, on a two-worker cluster."""

import os
import threading
import time

import numpy as np
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError

pytest.importorskip("pyarrow")
distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")

import pymc_extras as pmx

from pymc_extras.streaming import DaskSource
from pymc_extras.streaming.passes.full_data import FullDataLogp

# Dask 2026.8's Parquet reader calls reset_index(inplace=True), which pandas 3.1 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.reset_index")

FEATURES = ["x0", "x1", "x2"]
COLUMNS = [FEATURES, "y"]
BETA = np.array([1.0, -0.5, 0.25])
FILES = 4


@pytest.fixture(scope="module")
def client():
    """One cluster of two worker processes for the module: starting one takes seconds."""
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def write_files(folder, rows_per_file: int, seed: int = 0) -> list[str]:
    """``FILES`` Parquet files of a linear regression: one Dask partition each."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir()
    rng = np.random.default_rng(seed)
    paths = []
    for number in range(FILES):
        X = rng.normal(size=(rows_per_file, len(FEATURES)))
        y = 0.5 + X @ BETA + rng.normal(size=rows_per_file)
        columns = {name: X[:, j] for j, name in enumerate(FEATURES)} | {"y": y}
        path = folder / f"part-{number}.parquet"
        pq.write_table(pa.table(columns), path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return write_files(tmp_path_factory.mktemp("data") / "rows_a", 2_000)


def model_of(source):
    with pm.Model() as model:
        X, y = pm.Minibatch(source, batch_size=100, streaming=True)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 1, shape=len(FEATURES))
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X @ beta, sigma, observed=y)
    return model


def frame(paths):
    return dd.read_parquet(paths, columns=[*FEATURES, "y"])


def here(frame_, **options):
    """A source whose passes read here: a scheduler that is not distributed."""
    return DaskSource(frame_, columns=COLUMNS, scheduler="threads", **options)


def on_cluster(frame_, client, **options):
    return DaskSource(frame_, columns=COLUMNS, scheduler=client, **options)


def points(full, count: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.5, size=(count, full.ndim))


def test_a_pass_on_the_cluster_equals_the_pass_here(client, files):
    reference = FullDataLogp(model_of(here(frame(files))), chunk_size=1_000)
    full = FullDataLogp(model_of(on_cluster(frame(files), client)), chunk_size=1_000)
    grad_points, value_points = points(full, 3), points(full, 5, seed=2)
    expected = reference.evaluate(grad_points, value_points)
    for _ in range(2):  # the second pass reuses the evaluation the workers keep
        result = full.evaluate(grad_points, value_points)
        [traffic] = full.traffic
        assert traffic is not None and traffic.partitions == FILES  # it ran on the workers
        for name in ("logp", "grad", "value_logp"):
            np.testing.assert_allclose(
                getattr(result, name), getattr(expected, name), rtol=1e-12, err_msg=name
            )
    assert full.rows_read == 2 * reference.rows_read == 2 * FILES * 2_000
    full.close()


def test_a_collection_persisted_on_the_cluster_is_evaluated_where_it_is(client, files):
    # Its partitions are in the workers' memory: the tasks depend on them, not on a recipe.
    persisted = client.persist(frame(files))
    reference = FullDataLogp(model_of(here(frame(files))))
    full = FullDataLogp(model_of(on_cluster(persisted, client)))
    grad_points = points(full, 3)
    np.testing.assert_allclose(
        full.evaluate(grad_points).grad, reference.evaluate(grad_points).grad, rtol=1e-12
    )
    assert full.traffic[0] is not None
    full.close()
    del persisted


def test_bytes_moved_per_pass_do_not_grow_with_the_rows(client, tmp_path):
    small = write_files(tmp_path / "rows_a", 1_000)
    large = write_files(tmp_path / "rows_b", 20_000)  # same names, 20 times the rows
    traffic = {}
    for label, paths in (("small", small), ("large", large)):
        full = FullDataLogp(model_of(on_cluster(frame(paths), client)))
        grad_points = points(full, 4)
        full.evaluate(grad_points)  # the first pass also sends the compiled evaluation
        full.evaluate(grad_points)
        [traffic[label]] = full.traffic
        full.close()
    small_traffic, large_traffic = traffic["small"], traffic["large"]
    data_bytes = FILES * 20_000 * (len(FEATURES) + 1) * 8  # 2.6 MB of rows in the large set
    # What is sent is the graph (file names) and the points; what comes back, one partial sum
    # per partition: the same whatever the rows.
    assert large_traffic.sent_bytes <= small_traffic.sent_bytes + 256
    assert large_traffic.received_bytes == small_traffic.received_bytes
    assert large_traffic.received_bytes < 4_000
    # Dask's own counters of what workers served (to each other and to us): no rows.
    assert large_traffic.worker_outgoing_bytes < data_bytes / 100
    # The counters do see rows when rows move: gathering the partitions counts them all.
    source = on_cluster(frame(large), client)
    before = sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())
    futures = client.compute([part for parts in source.partitions() for part in parts])
    client.gather(futures)
    del futures
    after = sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())
    assert after - before >= data_bytes


def die_once(partition, marker: str):
    """Kill the worker process computing the first partition that gets here, once."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return partition
    os._exit(1)


def test_a_worker_lost_mid_pass_is_retried_and_the_result_unchanged(client, files, tmp_path):
    marker = str(tmp_path / "killed")
    lengths = [2_000] * FILES
    dying = frame(files).map_partitions(die_once, marker, meta=frame(files)._meta)
    reference = FullDataLogp(model_of(here(frame(files))))
    full = FullDataLogp(model_of(on_cluster(dying, client, lengths=lengths)))
    grad_points = points(full, 2)
    result = full.evaluate(grad_points)
    assert os.path.exists(marker)  # a worker was killed during the pass
    expected = reference.evaluate(grad_points)
    np.testing.assert_allclose(result.logp, expected.logp, rtol=1e-12)
    np.testing.assert_allclose(result.grad, expected.grad, rtol=1e-12)
    full.close()
    client.wait_for_workers(2, timeout=60)


def fail_to_read(partition, partition_info=None):
    if partition_info["number"] == 2:
        raise OSError("the disk holding this partition is gone")
    return partition


def pass_keys(dask_scheduler) -> list:
    return [key for key in dask_scheduler.tasks if "full-data-pass" in str(key)]


def test_a_partition_that_fails_to_read_raises_its_error_naming_the_partition(client, files):
    failing = frame(files).map_partitions(fail_to_read, meta=frame(files)._meta)
    full = FullDataLogp(model_of(on_cluster(failing, client, lengths=[2_000] * FILES)))
    threads = set(threading.enumerate())
    with pytest.raises(OSError, match="the disk holding this partition is gone") as raised:
        full.evaluate(points(full, 2))
    notes = " ".join(getattr(raised.value, "__notes__", []))
    assert "partition 2 of the data (rows 4000 to 5999)" in notes
    # Nothing of the pass is left on the cluster, and no thread of it here.
    full.close()
    deadline = time.monotonic() + 10
    while client.run_on_scheduler(pass_keys) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.run_on_scheduler(pass_keys) == []
    assert not any(client.processing().values())
    assert set(threading.enumerate()) <= threads


@pytest.mark.filterwarnings("ignore:observed_data leaves out y")
def test_pathfinder_gives_the_same_draws_on_the_cluster(client, files):
    options = {"num_paths": 2, "num_draws": 50, "num_draws_per_path": 50, "num_elbo_draws": 4}
    draws = {}
    for label, source in (
        ("here", here(frame(files))),
        ("cluster", on_cluster(frame(files), client)),
    ):
        idata = pmx.fit(
            method="pathfinder", model=model_of(source), random_seed=3, progressbar=False, **options
        )
        draws[label] = idata.posterior["beta"].values
    np.testing.assert_allclose(draws["cluster"], draws["here"], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(draws["here"].mean(axis=(0, 1)), BETA, atol=0.1)
    assert client.run_on_scheduler(pass_keys) == []


def test_parquet_partitions_are_read_in_pieces_by_the_task_that_evaluates_them(files):
    """A plain read_parquet partition is read a piece at a time, each piece the rows of the
    DataFrame Dask would compute; any other graph is left to Dask."""
    import pandas as pd

    from pymc_extras.streaming.passes.dask_recipes import ParquetPieces, Recipe, recipes

    planned = recipes(here(frame(files)).partitions())
    assert all(isinstance(recipe, ParquetPieces) for (recipe,) in planned)
    pieces = list(planned[1][0].frames(700))
    assert [len(piece) for piece in pieces] == [700, 700, 600]
    whole = frame(files).partitions[1].compute()
    pd.testing.assert_frame_equal(pd.concat(pieces, ignore_index=True), whole)
    filtered = dd.read_parquet(files, columns=[*FEATURES, "y"], filters=[("y", ">", -100)])
    series = frame(files)["y"]
    for other in (filtered, series):
        [(recipe,), *_] = recipes([(part,) for part in other.to_delayed()])
        assert isinstance(recipe, Recipe)


def test_a_partition_read_in_pieces_with_other_rows_than_declared_is_refused(client, files):
    lengths = [2_000, 2_000, 1_999, 2_000]
    full = FullDataLogp(model_of(on_cluster(frame(files), client, lengths=lengths)))
    with pytest.raises(
        SourceDataError,
        match=r"Partition 2 of the data \(.*part-2\.parquet\) has 2000 rows, but 1999",
    ):
        full.evaluate(points(full, 2))
    assert (full.passes, full.rows_read) == (0, 0)
    full.close()
