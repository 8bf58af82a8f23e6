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
"""Sub-sampled LOO of a streaming model: arviz_stats' estimator, with one pass over the data."""

import warnings

import arviz as az
import arviz_stats
import numpy as np
import pymc as pm
import pytest
import xarray as xr

from pymc_extras.streaming.workflow.approximation import log_densities
from pymc_extras.streaming.workflow.loo import LOO_FILES, loo_subsample
from tests.streaming.workflow_models import (
    COORDS,
    memory_linear,
    posterior,
    simulate,
    streaming_linear,
)

N = 50_000
DATA = simulate(N, seed=7)
M = 4_000


@pytest.fixture(scope="module")
def idata():
    return posterior(DATA, draws=250)


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y)


@pytest.fixture(scope="module")
def in_memory(idata):
    """The in-memory model, and the full log-likelihood of all 50,000 rows."""
    memory = memory_linear(DATA.X, DATA.y)
    full = pm.compute_log_likelihood(idata.copy(), model=memory, progressbar=False)
    dims = full.log_likelihood["y"].dims[-1]
    full["observed_data"] = xr.Dataset({"y": (dims, DATA.y)})
    return memory, full


@pytest.mark.parametrize("method", ["plpd", "lpd"])
def test_equals_arviz_loo_subsample_with_the_data_in_memory(idata, model, in_memory, method):
    ours = loo_subsample(idata, model, observations=M, seed=3, method=method)
    memory, full = in_memory
    theirs = arviz_stats.loo_subsample(
        full,
        observations=ours.loo_subsample_observations,
        method=method,
        model=memory if method == "plpd" else None,
    )
    for field in ("elpd", "se", "subsampling_se", "p"):
        np.testing.assert_allclose(getattr(ours, field), getattr(theirs, field), rtol=1e-9)
    assert ours.n_data_points == N
    assert ours.subsample_size == M
    np.testing.assert_allclose(ours.elpd_loo_approx, theirs.elpd_loo_approx, rtol=1e-10)


def test_within_its_subsampling_se_of_exact_loo(idata, model, in_memory):
    """The estimate's error is of the size of its reported subsampling SE, over subsamples.

    One subsample's estimate lies within one SE of the truth with probability about 0.68, so
    each of several subsamples is checked against 2.5 SE and most against one SE.
    """
    exact = arviz_stats.loo(in_memory[1])
    errors = []
    for seed in range(5):
        ours = loo_subsample(idata, model, observations=M, seed=seed)
        assert ours.passes == 1
        errors.append(abs(ours.elpd - exact.elpd) / ours.subsampling_se)
        assert abs(ours.se - exact.se) <= ours.subsampling_se
    assert max(errors) <= 2.5
    assert sum(error <= 1 for error in errors) >= 3


def test_compare_two_streaming_models_on_the_same_source(idata, model, in_memory):
    with pm.Model(coords=COORDS) as smaller:
        X_mb, y_mb = pm.Minibatch(DATA.X, DATA.y, batch_size=256, streaming=True)
        beta = pm.Normal("beta", 0, 2, dims="feature")
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb)  # no intercept: a worse model
    post = idata.posterior.to_dataset().drop_vars("intercept")
    small_idata = az.from_dict(
        {"posterior": {name: value.values for name, value in post.items()}},
        dims={"beta": ["feature"]},
        coords=COORDS,
    )
    loos = {
        "full": loo_subsample(idata, model, observations=M, seed=9),
        "no intercept": loo_subsample(small_idata, smaller, observations=M, seed=9),
    }
    table = az.compare(loos)
    assert list(table.index) == ["full", "no intercept"]
    assert table.loc["no intercept", "elpd_diff"] < -4 * table.loc["no intercept", "dse"]
    assert np.isfinite(table.loc["no intercept", "subsampling_dse"])


def test_per_row_vectors_on_disk_equal_those_in_memory(idata, model, tmp_path):
    on_disk = loo_subsample(idata, model, observations=500, seed=1, pointwise_dir=tmp_path)
    in_ram = loo_subsample(idata, model, observations=500, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(LOO_FILES)
    for name in ("elpd_loo_approx", "elpd_i", "pareto_k"):
        np.testing.assert_array_equal(getattr(on_disk, name), getattr(in_ram, name))
    assert isinstance(on_disk.elpd_i.data, np.memmap)
    assert np.isfinite(on_disk.elpd_i.values).sum() == 500
    no_vectors = loo_subsample(idata, model, observations=500, seed=1, pointwise=False)
    assert no_vectors.elpd_i is None and no_vectors.elpd == on_disk.elpd


@pytest.mark.filterwarnings(
    # ADVI's q is narrower than the posterior, so some importance ratios p/q are heavy-tailed:
    # arviz warns about their Pareto k; this test checks the estimate against exact LOO.
    "ignore:Estimated shape parameter of Pareto:UserWarning",
    # The core warns that approx.sample leaves the streamed observations out of observed_data.
    "ignore:observed_data leaves out:UserWarning",
)
def test_approximate_posterior_correction_for_advi(model, in_memory):
    with model:
        approx = pm.fit(
            6_000, obj_optimizer=pm.adam(learning_rate=0.01), random_seed=1, progressbar=False
        )
    draws = approx.sample(400, random_seed=2)
    densities = log_densities(draws, approx, model)
    ours = loo_subsample(
        draws, model, observations=M, seed=4, log_p=densities["log_p"], log_q=densities["log_q"]
    )
    assert ours.approx_posterior
    full = pm.compute_log_likelihood(draws.copy(), model=in_memory[0], progressbar=False)
    exact = arviz_stats.loo_approximate_posterior(full, densities["log_p"], densities["log_q"])
    assert abs(ours.elpd - exact.elpd) <= 2 * ours.subsampling_se


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "waic"}, ValueError, "'plpd' or 'lpd'"),
        ({"log_p": np.zeros(1_000)}, ValueError, "only log_p"),
        ({"var_name": "beta"}, ValueError, "not observed variables"),
        ({"observations": N + 1}, ValueError, "Cannot choose"),
        ({"pointwise_dir": "/nonexistent/folder"}, FileNotFoundError, "not a folder"),
    ],
    ids=["method", "log-p-alone", "not-observed", "too-many-rows", "missing-folder"],
)
def test_errors_say_what_was_received(idata, model, kwargs, error, match):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=match):
            loo_subsample(idata, model, **{"observations": 100, **kwargs})
