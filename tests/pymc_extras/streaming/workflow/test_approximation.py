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
"""log p and log q at approximate-posterior draws: the full-data density and the approximation's."""

import numpy as np
import pymc as pm
import pytest

from pymc_extras.inference.advi import AutoMultivariateNormal, Trainer
from pymc_extras.streaming.workflow.approximation import log_densities, unconstrained_draws
from tests.streaming.workflow_models import memory_linear, simulate, streaming_linear

DATA = simulate(3_000, seed=8)

pytestmark = pytest.mark.filterwarnings(
    # approx.sample() and Trainer.sample_posterior() on a streaming model leave the streamed
    # observations out of observed_data, and say so; these tests read the posterior only.
    "ignore:observed_data leaves out:UserWarning"
)


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y)


def mvnormal_logp(points, mean, cov):
    return pm.logp(pm.MvNormal.dist(mean, cov), points).eval()


def value_points(idata, model, order):
    values = unconstrained_draws(idata, model)
    return np.concatenate([values[name].reshape(len(values[name]), -1) for name in order], axis=1)


@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_pm_fit_approximations(model, method):
    with model:
        approx = pm.fit(300, method=method, random_seed=1, progressbar=False)
    idata = approx.sample(30, random_seed=2)
    densities = log_densities(idata, approx, model)
    [group] = approx.groups
    points = value_points(idata, model, list(group.ordering))
    expected = mvnormal_logp(points, group.mean.eval(), group.cov.eval())
    np.testing.assert_allclose(densities["log_q"].values.ravel(), expected, rtol=1e-8)
    # log p is the in-memory model's log density (with Jacobians) at the same points.
    logp = memory_linear(DATA.X, DATA.y).compile_logp()
    names = [var.name for var in model.value_vars]
    values = unconstrained_draws(idata, model)
    for i in (0, 7, 29):
        point = {name: values[name][i] for name in names}
        assert np.isclose(densities["log_p"].values.ravel()[i], logp(point), rtol=1e-10)
    assert densities.attrs["passes"] == 1


@pytest.mark.parametrize("guide", [None, AutoMultivariateNormal], ids=["diagonal", "full-rank"])
def test_trainer_guides(model, guide):
    trainer = Trainer(guide=guide, random_seed=1)
    trainer.fit(200, model=model, random_seed=1)
    idata = trainer.sample_posterior(25, model=model, random_seed=2)
    densities = log_densities(idata, trainer, model)
    params = trainer.state.params
    names = [var.name for var in model.value_vars]
    points = value_points(idata, model, names)
    if guide is None:
        rvs = model.free_RVs
        mean = np.concatenate([np.ravel(params[f"{rv.name}_loc"]) for rv in rvs])
        sd = np.concatenate([np.exp(np.ravel(params[f"{rv.name}_scale"])) for rv in rvs])
        order = [model.rvs_to_values[rv].name for rv in rvs]
        points = value_points(idata, model, order)
        cov = np.diag(sd**2)
    else:
        n = len(params["loc"])
        chol = np.zeros((n, n))
        chol[np.tril_indices(n)] = params["L_packed"]
        chol[np.diag_indices(n)] = np.exp(np.diagonal(chol))
        mean, cov = params["loc"], chol @ chol.T
    expected = mvnormal_logp(points, mean, cov)
    np.testing.assert_allclose(densities["log_q"].values.ravel(), expected, rtol=1e-8)


def test_particles_have_no_density(model):
    with model:
        approx = pm.fit(5, method="svgd", inf_kwargs={"n_particles": 5}, progressbar=False)
    idata = approx.sample(5, random_seed=1)
    with pytest.raises(TypeError, match="no density"):
        log_densities(idata, approx, model)


def test_unknown_approximations_are_refused(model):
    idata = pm.sample_prior_predictive(5, model=model, var_names=["beta", "intercept", "sigma"])
    idata["posterior"] = idata["prior"]
    with pytest.raises(TypeError, match=r"what pm\.fit returns"):
        log_densities(idata, object(), model)
    with pytest.raises(ValueError, match="not been fitted"):
        log_densities(idata, Trainer(), model)
