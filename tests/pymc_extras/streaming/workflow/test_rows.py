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
"""A copy of a streaming model holds chosen rows in memory, as the in-memory model would."""

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymc as pm
import pytest

from arviz_stats.loo.loo_helper import _generate_subsample_indices
from hypothesis import given, settings
from hypothesis import strategies as st
from pymc.streaming import StreamingNotSupportedError

from pymc_extras.streaming import ParquetSource
from pymc_extras.streaming.workflow.data_blocks import RowPicker, choose_rows, data_blocks
from pymc_extras.streaming.workflow.rows import rows_model
from tests.streaming.workflow_models import memory_linear, posterior, simulate, streaming_linear

DATA = simulate(3_000, seed=4)
ROWS = np.array([0, 7, 1_500, 2_999])


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y, deterministic=True)


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "data.parquet"
    columns = {f"x{j + 1}": DATA.X[:, j] for j in range(3)} | {"y": DATA.y}
    pq.write_table(pa.table(columns), path, row_group_size=700)
    return path


def test_copy_holds_the_rows_unscaled_with_their_row_numbers(model):
    copy = rows_model(model, rows=ROWS)
    X_name, _y_name = (buffer.name for buffer in pm.streaming.get_stream(model["y"]).buffers)
    np.testing.assert_array_equal(copy[X_name].get_value(), DATA.X[ROWS])
    np.testing.assert_array_equal(copy.rvs_to_values[copy["y"]].get_value(), DATA.y[ROWS])
    assert copy.coords["row"] == tuple(ROWS)
    assert copy.named_vars_to_dims["y"] == ("row",)
    assert copy.named_vars_to_dims["mu"] == ("row",)
    # Its log density is the in-memory model's on those rows: observations are not scaled.
    in_memory = memory_linear(DATA.X[ROWS], DATA.y[ROWS], deterministic=True)
    point = {"beta": np.array([0.5, 0.1, -0.2]), "intercept": 0.3, "sigma_log__": 0.2}
    assert np.isclose(copy.compile_logp()(point), in_memory.compile_logp()(point))


def test_rows_from_a_file_equal_rows_from_arrays(model, parquet):
    source = ParquetSource(parquet, columns=[["x1", "x2", "x3"], "y"])
    from_file = rows_model(streaming_linear(source), rows=ROWS)
    from_arrays = rows_model(model, rows=ROWS)
    for copy in (from_file, from_arrays):
        values = {var.name.rsplit(".", 1)[1]: var.get_value() for var in copy.data_vars}
        np.testing.assert_array_equal(values["0"], DATA.X[ROWS])
        np.testing.assert_array_equal(values["1"], DATA.y[ROWS])


def test_random_rows_are_those_arviz_loo_subsample_draws(model):
    ours = choose_rows(len(DATA.y), 50, seed=11)
    theirs, _ = _generate_subsample_indices(len(DATA.y), 50, 11)
    np.testing.assert_array_equal(ours, np.sort(theirs))
    copy = rows_model(model, rows=50, seed=11)
    np.testing.assert_array_equal(copy.coords["row"], ours)


def test_new_data_for_the_covariates_only(model):
    X_new = np.arange(12.0).reshape(4, 3)
    copy = rows_model(model, data=X_new)
    names = [var.name for var in copy.data_vars]
    np.testing.assert_array_equal(copy[names[0]].get_value(), X_new)
    np.testing.assert_array_equal(copy[names[1]].get_value(), np.zeros(4))  # observed only
    assert copy.coords["row"] == tuple(range(4))
    by_variable = rows_model(model, data={names[0]: X_new})
    np.testing.assert_array_equal(by_variable[names[0]].get_value(), X_new)


def test_posterior_with_data_deterministics_on_chosen_rows(model):
    idata = posterior(DATA, draws=20)
    with pytest.raises(StreamingNotSupportedError, match="one batch"):
        pm.compute_deterministics(idata.posterior, model=model, progressbar=False)
    copy = rows_model(model, rows=ROWS)
    mu = pm.compute_deterministics(idata.posterior, model=copy, progressbar=False)["mu"]
    assert list(mu.row.values) == list(ROWS)
    post = idata.posterior
    expected = post["intercept"].values[..., None] + post["beta"].values @ DATA.X[ROWS].T
    np.testing.assert_allclose(mu.transpose("chain", "draw", "row").values, expected)


@given(
    rows=st.lists(st.integers(0, 199), min_size=1, max_size=40, unique=True),
    cuts=st.lists(st.integers(1, 199), max_size=8, unique=True),
)
@settings(max_examples=60, deadline=None)
def test_row_picker_finds_every_row_whatever_the_chunking(rows, cuts):
    data = np.arange(200.0)
    wanted = np.sort(np.asarray(rows))
    picker = RowPicker(wanted)
    bounds = [0, *sorted(cuts), 200]
    for start, stop in itertools.pairwise(bounds):
        picker.offer(start, (data[start:stop],))
    np.testing.assert_array_equal(picker.result(200)[0], wanted)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({}, ValueError, "not neither"),
        ({"rows": 3, "data": np.zeros((2, 3))}, ValueError, "not both"),
        ({"rows": [3_000]}, ValueError, "below 3000"),
        ({"rows": [-1]}, ValueError, "at least 0"),
        ({"rows": np.array([[1, 2]])}, TypeError, "1-D array of row"),
        ({"rows": 1.5}, TypeError, "1-D array of row"),
        ({"rows": 0}, ValueError, "Cannot choose 0 rows"),
        ({"data": np.zeros((2, 4))}, ValueError, r"rows of shape \(4,\)"),
        ({"data": (np.zeros((2, 3)), np.zeros(2), np.zeros(2))}, ValueError, "gave 3 arrays"),
        ({"data": {"nope": np.zeros((2, 3))}}, KeyError, "not a minibatch variable"),
        ({"data": (np.zeros((2, 3)), np.zeros(3))}, ValueError, "different numbers of rows"),
    ],
    ids=[
        "neither",
        "both",
        "row-too-large",
        "negative-row",
        "rows-2d",
        "rows-float",
        "zero-rows",
        "wrong-row-shape",
        "too-many-arrays",
        "unknown-name",
        "ragged-new-data",
    ],
)
def test_errors_say_what_was_received(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        rows_model(model, **kwargs)


def test_new_data_must_give_what_the_model_reads(model):
    names = next(block.names for block in data_blocks(model)[1])
    with pytest.raises(ValueError, match="missing"):
        rows_model(model, data={names[1]: np.zeros(3)})


def test_an_in_memory_minibatch_works_too():
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(DATA.X, DATA.y, batch_size=100)  # upstream's, in memory
        beta = pm.Normal("beta", 0, 2, shape=3)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb, total_size=len(DATA.y))
    copy = rows_model(model, rows=ROWS)
    values = {var.name: var.get_value() for var in copy.data_vars}
    np.testing.assert_array_equal(values["minibatch0.0"], DATA.X[ROWS])
    np.testing.assert_array_equal(values["minibatch0.1"], DATA.y[ROWS])
    new = rows_model(model, data=DATA.X[:2])
    np.testing.assert_array_equal(new["minibatch0.0"].get_value(), DATA.X[:2])


def test_a_one_shot_source_cannot_be_read_again():
    chunks = iter([(DATA.X[:1_000], DATA.y[:1_000])])
    model = streaming_linear(chunks, total_size=1_000)
    with pytest.raises(StreamingNotSupportedError, match="one-shot iterator"):
        rows_model(model, rows=[1])
