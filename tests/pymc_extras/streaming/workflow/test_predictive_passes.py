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
"""Predictive passes write, block by block, exactly PyMC's draws for those rows and seeds."""

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr

from hypothesis import given, settings
from hypothesis import strategies as st

from pymc_extras.streaming import ParquetSource
from pymc_extras.streaming.workflow.pointwise import (
    PREDICTIVE_BLOCK_ROWS,
    block_seed,
    blocks_of_rows,
)
from pymc_extras.streaming.workflow.predictive import predict
from pymc_extras.streaming.workflow.predictive_passes import ppc_summary, predict_to_file
from pymc_extras.streaming.workflow.row_outputs import DatasetQuantiles
from tests.streaming.full_data_models import Chunked
from tests.streaming.workflow_models import posterior, simulate, streaming_linear

DATA = simulate(5_000, seed=5)
NEW = simulate(2_500, seed=6)  # two full blocks and a partial one
SEED = 17


@pytest.fixture(scope="module")
def idata():
    return posterior(DATA, draws=60)


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y, deterministic=True)


def blocks(n):
    return [slice(b, min(b + PREDICTIVE_BLOCK_ROWS, n)) for b in range(0, n, PREDICTIVE_BLOCK_ROWS)]


def in_memory_draws(idata, model, X, var):
    """``predict`` (pm.sample_posterior_predictive) on each block with its seed, joined."""
    root = np.random.SeedSequence(SEED)
    parts = [
        predict(idata, X[rows], model, random_seed=block_seed(root, b), var_names=[var])
        .predictions[var]
        .values
        for b, rows in enumerate(blocks(len(X)))
    ]
    return np.concatenate(parts, axis=-1)


def test_parquet_rows_summarise_pymc_draws_for_each_block(idata, model, tmp_path):
    report = predict_to_file(
        idata, NEW.X, tmp_path / "p.parquet", model, random_seed=SEED, var_names=["y", "mu"]
    )
    table = pq.read_table(tmp_path / "p.parquet").to_pandas()
    assert report.rows == len(table) == len(NEW.X)
    assert report.passes == 1
    np.testing.assert_array_equal(table["row"], np.arange(len(NEW.X)))
    draws = in_memory_draws(idata, model, NEW.X, "y").reshape(-1, len(NEW.X))
    np.testing.assert_allclose(table["y_mean"], draws.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(table["y_sd"], draws.std(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(table["y_q0.05"], np.quantile(draws, 0.05, axis=0), rtol=1e-10)
    # A deterministic has no randomness: its per-row mean is the exact posterior mean.
    post = idata.posterior
    mu = post["intercept"].values[..., None] + post["beta"].values @ NEW.X.T
    np.testing.assert_allclose(table["mu_mean"], mu.reshape(-1, len(NEW.X)).mean(axis=0))


def test_zarr_holds_every_draw_as_a_predictions_group(idata, model, tmp_path):
    predict_to_file(idata, NEW.X, tmp_path / "p.zarr", model, random_seed=SEED)
    tree = xr.open_datatree(tmp_path / "p.zarr", engine="zarr")
    y = tree["predictions"]["y"]
    assert y.dims == ("chain", "draw", "row")
    np.testing.assert_array_equal(y["row"], np.arange(len(NEW.X)))
    np.testing.assert_allclose(y.values, in_memory_draws(idata, model, NEW.X, "y"), rtol=1e-10)


def test_the_file_does_not_depend_on_how_the_source_is_chunked(idata, model, tmp_path):
    chunked = Chunked(NEW.X)
    chunked.cuts = [1, 999, 1_500, 1_501]
    parquet = tmp_path / "new.parquet"
    columns = {f"x{j + 1}": NEW.X[:, j] for j in range(3)}
    pq.write_table(pa.table(columns), parquet, row_group_size=333)
    sources = {
        "arrays": NEW.X,
        "chunks": chunked,
        "parquet": ParquetSource(parquet, columns=[["x1", "x2", "x3"]]),
    }
    tables = {}
    for name, source in sources.items():
        predict_to_file(idata, source, tmp_path / f"{name}.parquet", model, random_seed=SEED)
        tables[name] = pq.read_table(tmp_path / f"{name}.parquet").to_pandas()
    for name in ("chunks", "parquet"):
        np.testing.assert_array_equal(tables[name].to_numpy(), tables["arrays"].to_numpy())


def test_new_data_may_carry_the_observations_too(idata, model, tmp_path):
    with_y = predict_to_file(idata, (NEW.X, NEW.y), tmp_path / "a.parquet", model, random_seed=1)
    without = predict_to_file(idata, NEW.X, tmp_path / "b.parquet", model, random_seed=1)
    a, b = (pq.read_table(r.path).to_pandas() for r in (with_y, without))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_ppc_summary_statistics_of_every_row_in_one_pass(idata, model, tmp_path):
    checks = ppc_summary(
        idata, model, path=tmp_path / "c.parquet", random_seed=SEED, data_quantiles=(0.1, 0.9)
    )
    assert checks.attrs["rows"] == len(DATA.y)
    assert checks.attrs["passes"] == 1
    observed = checks.observed_data["y"]
    assert list(observed["statistic"].values) == ["mean", "var", "q0.1", "q0.9"]
    np.testing.assert_allclose(observed.sel(statistic="mean"), DATA.y.mean(), rtol=1e-12)
    np.testing.assert_allclose(observed.sel(statistic="var"), DATA.y.var(ddof=1), rtol=1e-10)
    resolution = checks.attrs["quantile_resolution"]["y"]
    for q in (0.1, 0.9):
        exact = np.quantile(DATA.y, q, method="inverted_cdf")
        assert abs(float(observed.sel(statistic=f"q{q:g}")) - exact) <= resolution
    # The replicated statistics are those of the blocks' PyMC draws.
    draws = in_memory_draws(idata, model, DATA.X, "y")
    replicated = checks.posterior_predictive["y"]
    np.testing.assert_allclose(replicated.sel(statistic="mean"), draws.mean(axis=-1), rtol=1e-10)
    np.testing.assert_allclose(
        replicated.sel(statistic="var"), draws.var(axis=-1, ddof=1), rtol=1e-10
    )
    q90 = np.quantile(draws, 0.9, axis=-1, method="inverted_cdf")
    assert np.abs(replicated.sel(statistic="q0.9").values - q90).max() <= resolution
    rows = pq.read_table(tmp_path / "c.parquet").to_pandas()
    np.testing.assert_array_equal(rows["y_observed"], DATA.y)
    pit = (draws.reshape(-1, len(DATA.y)) < DATA.y).mean(axis=0)
    np.testing.assert_allclose(rows["y_pit"], pit)
    # A calibrated model: PIT values are close to uniform, p-values far from 0 and 1.
    assert abs(rows["y_pit"].mean() - 0.5) < 0.02
    p_values = (replicated >= observed).mean(("chain", "draw"))
    assert ((p_values > 0.01) & (p_values < 0.99)).all()


@given(
    rows=st.integers(1, 60),
    block=st.integers(1, 12),
    cuts=st.lists(st.integers(1, 59), max_size=6, unique=True),
)
@settings(max_examples=100, deadline=None)
def test_blocks_of_rows_cover_the_data_in_order(rows, block, cuts):
    data = np.arange(rows)
    bounds = [0, *sorted(c for c in cuts if c < rows), rows]
    chunks = [(data[a:b],) for a, b in itertools.pairwise(bounds)]
    out = list(blocks_of_rows(iter(chunks), block))
    assert [number for number, _ in out] == list(range(len(out)))
    assert all(len(chunk[0]) == block for _, chunk in out[:-1])
    np.testing.assert_array_equal(np.concatenate([chunk[0] for _, chunk in out]), data)


def test_quantile_sketch_widens_to_cover_every_value():
    rng = np.random.default_rng(0)
    sketch = DatasetQuantiles()
    values = [rng.normal(size=(3, 500)), 50 * rng.normal(size=(3, 500)), rng.normal(size=(3, 10))]
    for part in values:
        sketch.add(part)
    joined = np.concatenate(values, axis=1)
    exact = np.quantile(joined, [0.05, 0.5, 0.95], axis=1, method="inverted_cdf").T
    assert np.abs(sketch.quantiles([0.05, 0.5, 0.95]) - exact).max() <= sketch.resolution


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda i, m, p: predict_to_file(i, NEW.X, p / "out.csv", m), ValueError, "format"),
        (
            lambda i, m, p: predict_to_file(i, np.zeros((5, 2)), p / "o.parquet", m),
            ValueError,
            r"rows of shape \(2,\)",
        ),
        (
            lambda i, m, p: predict_to_file(i, (NEW.X, NEW.y, NEW.y), p / "o.parquet", m),
            ValueError,
            "3 output",
        ),
        (
            lambda i, m, p: predict_to_file(i, NEW.X, p / "o.parquet", m, quantiles=[1.5]),
            ValueError,
            "between 0 and 1",
        ),
        (
            lambda i, m, p: predict_to_file(i, NEW.X, p / "o.parquet", m, var_names=["beta"]),
            ValueError,
            "not observed variables or deterministics",
        ),
        (lambda i, m, p: ppc_summary(i, m, path=p / "c.zarr"), ValueError, r"\*\.parquet"),
        (
            lambda i, m, p: ppc_summary(i, m, var_names=["mu"]),
            ValueError,
            "not observed variables",
        ),
        (
            lambda i, m, p: predict_to_file(i, NEW.X, p / "nowhere" / "o.parquet", m),
            FileNotFoundError,
            "does not exist",
        ),
    ],
    ids=[
        "unknown-format",
        "wrong-row-shape",
        "too-many-outputs",
        "bad-quantile",
        "free-variable",
        "ppc-to-zarr",
        "ppc-of-deterministic",
        "missing-folder",
    ],
)
def test_errors_say_what_was_received(idata, model, tmp_path, call, error, match):
    with pytest.raises(error, match=match):
        call(idata, model, tmp_path)


def test_an_existing_output_is_kept_unless_asked(idata, model, tmp_path):
    path = tmp_path / "p.parquet"
    path.write_text("keep me")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        predict_to_file(idata, NEW.X, path, model)
    predict_to_file(idata, NEW.X, path, model, overwrite=True)
    assert pq.read_table(path).num_rows == len(NEW.X)
