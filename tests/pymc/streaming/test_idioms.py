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
"""The idioms of PyMC's own examples work on a streaming model as on one with data in memory."""

import warnings

import numpy as np
import pytest

import pymc as pm

from pymc.exceptions import StreamingNotSupportedError

N, COLUMNS = 2_000, 3
RNG = np.random.default_rng(3)
X = RNG.normal(size=(N, COLUMNS))
GROUP = RNG.integers(4, size=N)
Y = X @ [1.0, -2.0, 0.5] + 0.3 * GROUP + RNG.normal(size=N)
FEATURES = ["a", "b", "c"]


def shaped_by_the_data(streaming=True):
    """Shapes and dims from the data, coords, and ``pm.Data`` beside the stream.

    ``streaming=False`` builds the same model on PyMC's in-memory ``pm.Minibatch``.
    """
    with pm.Model(coords={"feature": FEATURES, "group": range(4)}) as model:
        X_mb, g_mb, y_mb = pm.Minibatch(X, GROUP, Y, batch_size=100, streaming=streaming)
        scale = pm.Data("scale", 1.0)
        beta = pm.Normal("beta", 0, 5, shape=X_mb.shape[1])
        named = pm.Normal("named", 0, 1, dims="feature")
        offset = pm.Normal("offset", 0, 1, dims="group")
        sigma = pm.HalfNormal("sigma", scale)
        mu = X_mb @ (beta + 0 * named) + offset[g_mb]
        pm.Normal("y", mu, sigma, observed=y_mb, total_size=None if streaming else N)
    return model


def test_a_shape_from_the_data_makes_a_model_pm_fit_can_fit():
    model = shaped_by_the_data()
    with model:
        approx = pm.fit(
            3_000, random_seed=1, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.05)
        )
    draws = approx.sample(200, random_seed=1)
    assert draws.posterior["beta"].shape == (1, 200, COLUMNS)
    assert draws.posterior["named"].dims[-1] == "feature"
    means = draws.posterior["beta"].mean(("chain", "draw"))
    np.testing.assert_allclose(means, [1, -2, 0.5], atol=0.3)


def test_initial_point_and_str_repr_read_only_the_shape_of_the_stream():
    streaming, in_memory = shaped_by_the_data(), shaped_by_the_data(streaming=False)
    point = streaming.initial_point()
    assert point.keys() == in_memory.initial_point().keys()
    assert point["beta"].shape == (COLUMNS,)
    assert streaming.str_repr() == in_memory.str_repr()  # as PyMC prints its own Minibatch
    assert "beta ~ Normal(0, 5)" in streaming.str_repr()


def test_prior_draws_of_the_parameters_read_only_the_shape_of_the_stream():
    with shaped_by_the_data():
        prior = pm.sample_prior_predictive(
            draws=50, var_names=["beta", "named", "offset", "sigma"], random_seed=1
        )
    assert prior.prior["beta"].shape == (1, 50, COLUMNS)
    assert prior.prior["offset"].shape == (1, 50, 4)


def test_pm_data_beside_the_stream_can_be_changed():
    model = shaped_by_the_data()
    with model:
        pm.set_data({"scale": 2.0})
        approx = pm.fit(100, random_seed=1, progressbar=False)
    assert np.isfinite(approx.hist).all()


def test_computing_on_the_rows_is_still_refused():
    # The guard lets through what reads the stream's shape, not what reads its values.
    with shaped_by_the_data() as model:
        with pytest.raises(StreamingNotSupportedError, match=r"^compile_logp .*one batch"):
            model.compile_logp()
        with pytest.raises(StreamingNotSupportedError, match=r"sample_prior_predictive"):
            pm.sample_prior_predictive(draws=5)  # the observed variable reads the rows
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # find_MAP's own, upstream
            with pytest.raises(StreamingNotSupportedError, match=r"^find_MAP "):
                pm.find_MAP(progressbar=False)
