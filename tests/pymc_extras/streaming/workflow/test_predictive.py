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
"""Predictions and checks on rows in memory equal PyMC's on the in-memory model, draw for draw."""

import arviz as az
import matplotlib
import numpy as np
import pymc as pm
import pytest

from pymc.streaming import ArraySource

from pymc_extras.streaming.workflow.data_blocks import choose_rows
from pymc_extras.streaming.workflow.predictive import (
    log_likelihood_subsample,
    posterior_predictive_subsample,
    predict,
)
from tests.streaming.workflow_models import memory_linear, posterior, simulate, streaming_linear

matplotlib.use("Agg")

N = 50_000
DATA = simulate(N, seed=2)
NEW = simulate(700, seed=3)


@pytest.fixture(scope="module")
def idata():
    return posterior(DATA, draws=300)


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y, deterministic=True)


def test_predictions_equal_set_data_and_sample_posterior_predictive(idata, model):
    ours = predict(idata, NEW.X, model, random_seed=5, var_names=["y", "mu"])
    in_memory = memory_linear(DATA.X, DATA.y, deterministic=True)
    with in_memory:
        pm.set_data({"X": NEW.X, "y_obs": np.zeros(len(NEW.X))})
        theirs = pm.sample_posterior_predictive(
            idata, predictions=True, random_seed=5, var_names=["y", "mu"], progressbar=False
        )
    for name in ("y", "mu"):
        np.testing.assert_allclose(
            ours.predictions[name].values, theirs.predictions[name].values, rtol=1e-12
        )
    assert ours.predictions["y"].dims == ("chain", "draw", "row")
    np.testing.assert_array_equal(ours.predictions["row"], np.arange(len(NEW.X)))
    np.testing.assert_array_equal(
        next(iter(ours.predictions_constant_data.data_vars.values())), NEW.X
    )


def test_subsample_draws_equal_in_memory_draws_for_the_same_rows(idata, model):
    check = posterior_predictive_subsample(idata, model, rows=2_000, seed=8, random_seed=9)
    rows = choose_rows(N, 2_000, seed=8)
    np.testing.assert_array_equal(check.observed_data["row"], rows)
    np.testing.assert_array_equal(check.observed_data["y"], DATA.y[rows])
    with memory_linear(DATA.X[rows], DATA.y[rows]):
        theirs = pm.sample_posterior_predictive(idata, random_seed=9, progressbar=False)
        log_lik = pm.compute_log_likelihood(idata.copy(), progressbar=False)
    np.testing.assert_allclose(
        check.posterior_predictive["y"].values, theirs.posterior_predictive["y"].values, rtol=1e-12
    )
    np.testing.assert_allclose(
        check.log_likelihood["y"].values, log_lik.log_likelihood["y"].values, rtol=1e-12
    )
    # ArviZ's checks run on it as on an in-memory fit.
    pit = az.loo_pit(check)
    assert pit["y"].sizes == {"row": 2_000}
    assert 0.2 < float(pit["y"].mean()) < 0.8
    az.plot_ppc_dist(check, num_samples=20)
    az.plot_loo_pit(check)
    matplotlib.pyplot.close("all")


def test_log_likelihood_of_chosen_rows(idata, model):
    rows = np.array([3, 30_000, 49_999])
    result = log_likelihood_subsample(idata, model, rows=rows)
    with memory_linear(DATA.X[rows], DATA.y[rows]):
        theirs = pm.compute_log_likelihood(idata.copy(), progressbar=False)
    np.testing.assert_allclose(
        result.log_likelihood["y"].values, theirs.log_likelihood["y"].values, rtol=1e-12
    )
    np.testing.assert_array_equal(result.observed_data["y"], DATA.y[rows])
    assert sorted(result.children) == [
        "constant_data",
        "log_likelihood",
        "observed_data",
        "posterior",
    ]


def test_predict_refuses_a_source_and_points_to_the_file_path(idata, model):
    with pytest.raises(TypeError, match="predict_to_file"):
        predict(idata, ArraySource([NEW.X]), model)


def test_predict_needs_a_posterior(model):
    with pytest.raises(TypeError, match="posterior group"):
        predict(az.from_dict({"prior": {"sigma": np.ones((1, 3))}}), NEW.X, model)
