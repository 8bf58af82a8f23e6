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
"""The Trainer's one way to take streamed data: a model on ``pm.Minibatch(..., streaming=True)``."""

import numpy as np
import pymc as pm
import pytest

from pymc.streaming import streams_in

from pymc_extras.inference.advi import Trainer
from pymc_extras.streaming import ParquetSource
from pymc_extras.variational import DataLoader, parquet_source

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N = 600


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parquet")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 2))
    y = X @ [1.0, -0.5] + rng.normal(size=N)
    for part in range(3):
        rows = slice(part * N // 3, (part + 1) * N // 3)
        table = pa.table({"x1": X[rows, 0], "x2": X[rows, 1], "y": y[rows]})
        pq.write_table(table, folder / f"part{part}.parquet", row_group_size=50)
    return folder


SOURCES = {
    "ParquetSource": lambda folder: ParquetSource(folder, columns=[["x1", "x2", "y"]]),
    "parquet_source": lambda folder: parquet_source(str(folder)),
    "DataLoader": lambda folder: DataLoader(parquet_source(str(folder)), batch_size=20),
}


def fit(source, steps=30):
    with pm.Model() as model:
        data = pm.Minibatch(source, batch_size=20, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=2)
        obs = pm.Normal("y", data[:, :2] @ beta, 1, observed=data[:, 2])
        state = Trainer(random_seed=1).fit(steps, random_seed=2)
    return state, streams_in([obs])[0], obs.owner.inputs[1].eval()


@pytest.mark.parametrize("kind", list(SOURCES), ids=list(SOURCES))
def test_every_pymc_extras_parquet_object_streams_into_the_trainer_alike(parquet_dir, kind):
    """The loader, parquet_source and ParquetSource are one reader: the same fit, step by step."""
    state, stream, total_size = fit(SOURCES[kind](parquet_dir))
    assert stream.steps == 30 and len(state.loss_history) == 30  # a fresh batch every step
    assert total_size == N  # rows from the footers, never a count of batches
    expected, _, _ = fit(SOURCES["ParquetSource"](parquet_dir))
    np.testing.assert_array_equal(state.loss_history, expected.loss_history)
    for name, value in expected.params.items():
        np.testing.assert_array_equal(state.params[name], value)


def test_fit_data_still_sets_batches_made_in_python(parquet_dir):
    """Upstream's ``fit(n, data)``, the compatibility path, is unchanged: one batch per step."""
    blocks = list(parquet_source(str(parquet_dir)))
    with pm.Model():
        batch = pm.Data("batch", blocks[0])
        beta = pm.Normal("beta", 0, 1, shape=2)
        pm.Normal("y", batch[:, :2] @ beta, 1, observed=batch[:, 2], total_size=N)
        state = Trainer(random_seed=1).fit(10, data=[{"batch": block} for block in blocks])
    assert len(state.loss_history) == 10
