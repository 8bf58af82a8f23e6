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
"""The workflow on models whose observations are integers: as on float observations.

PyMC casts integer observations to the type of a discrete variable (int64 observed by a
Bernoulli becomes int32), so the observation is reached through a cast: it is still what the
model observes, not a covariate that new data must give.
"""

import numpy as np
import pyarrow.parquet as pq
import pymc as pm
import pytest

import pymc_extras as pmx

N = 2_000
RNG = np.random.default_rng(7)
X = RNG.normal(size=(N, 2))
G = RNG.integers(3, size=N)
ETA = X @ [0.8, -0.6] + 0.3 * G - 0.2


def model_of(kind, streaming=True):
    y = RNG.binomial(1, 1 / (1 + np.exp(-ETA))) if kind == "bernoulli" else RNG.poisson(np.exp(ETA))
    with pm.Model() as model:
        X_mb, g_mb, y_mb = pm.Minibatch(X, G, y, batch_size=100, streaming=streaming)
        b = pm.Normal("b", 0, 2, shape=2)
        offset = pm.Normal("offset", 0, 1, shape=3)
        eta = X_mb @ b + offset[g_mb]
        if kind == "bernoulli":
            pm.Bernoulli("y", logit_p=eta, observed=y_mb)
        else:
            pm.Poisson("y", mu=pm.math.exp(eta), observed=y_mb)
    return model, y


@pytest.fixture(scope="module", params=["bernoulli", "poisson"])
def fitted(request):
    model, y = model_of(request.param)
    with model:
        approx = pm.fit(1_500, random_seed=1, progressbar=False)
    return model, y, approx.sample(100, random_seed=2)


def test_predict_takes_the_covariates_only(fitted):
    model, y, idata = fitted
    X_new, g_new = X[:25], G[:25]
    covariates_only = pmx.streaming.predict(idata, (X_new, g_new), model, random_seed=3)
    with_dummy = pmx.streaming.predict(idata, (X_new, g_new, y[:25]), model, random_seed=3)
    np.testing.assert_array_equal(
        covariates_only.predictions["y"].values, with_dummy.predictions["y"].values
    )
    assert covariates_only.predictions["y"].shape[-1] == 25
    assert np.issubdtype(covariates_only.predictions["y"].dtype, np.integer)


def test_predict_to_file_takes_a_source_of_the_covariates_only(fitted, tmp_path):
    model, _, idata = fitted
    report = pmx.streaming.predict_to_file(
        idata, (X[:300], G[:300]), tmp_path / "predictions.parquet", model, random_seed=3
    )
    table = pq.read_table(tmp_path / "predictions.parquet").to_pandas()
    assert report.rows == len(table) == 300
    assert table.filter(like="mean").notna().all().all()


# 100 draws of an approximation: PSIS may warn that some Pareto k are high; that is ArviZ's say.
@pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")
def test_checks_and_loo_on_integer_observations(fitted):
    model, y, idata = fitted
    summary = pmx.streaming.ppc_summary(idata, model, random_seed=3)
    assert summary is not None
    ppc = pmx.streaming.posterior_predictive_subsample(idata, model, rows=200, seed=1)
    np.testing.assert_array_equal(
        ppc.observed_data["y"].values, y[ppc.observed_data["y"]["row"].values]
    )
    loglik = pmx.streaming.log_likelihood_subsample(idata, model, rows=200, seed=1)
    assert np.isfinite(loglik.log_likelihood["y"].values).all()
    elpd = pmx.streaming.loo_subsample(idata, model, observations=300, seed=1)
    assert np.isfinite(elpd.elpd)


def test_integer_and_float_observations_read_the_same_covariates():
    from pymc_extras.streaming.workflow.data_blocks import data_blocks

    for kind in ("bernoulli", "poisson"):
        model, _ = model_of(kind)
        _, [block] = data_blocks(model)
        assert block.covariates() == [0, 1]  # X and g; y is observed only
    with pm.Model() as floats:
        X_mb, g_mb, y_mb = pm.Minibatch(X, G, ETA, batch_size=100, streaming=True)
        pm.Normal("y", X_mb @ pm.Normal("b", shape=2) + g_mb, 1, observed=y_mb)
    _, [block] = data_blocks(floats)
    assert block.covariates() == [0, 1]


def test_new_data_that_the_model_s_dtypes_would_change_is_refused(fitted, tmp_path):
    from pymc.exceptions import SourceDataError

    model, _, idata = fitted
    with pytest.raises(SourceDataError, match=r"holds complex values of dtype complex128"):
        pmx.streaming.predict(idata, (X[:5] + 5j, G[:5]), model, random_seed=3)
    fractional = G[:300] + 0.75  # the integer covariate given fractions: 0.75 would become 0
    with pytest.raises(SourceDataError, match=r"would become"):
        pmx.streaming.predict(idata, (X[:300], fractional), model, random_seed=3)
    with pytest.raises(SourceDataError, match=r"would become"):
        pmx.streaming.predict_to_file(
            idata, (X[:300], fractional), tmp_path / "predictions.parquet", model, random_seed=3
        )
    assert not list(tmp_path.iterdir())  # and no output is left
