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
"""PyMC's idioms on a streaming model, in pymc-extras' fits: shapes and dims from the data."""

import numpy as np
import pymc as pm
import pytest

import pymc_extras as pmx

from pymc_extras.inference.advi import fit_advi

N = 3_000
RNG = np.random.default_rng(11)
X = RNG.normal(size=(N, 3))
Y = X @ [1.0, -2.0, 0.5] + RNG.normal(size=N)


def shaped_by_the_data(streaming=True, column_count=lambda X_mb: X_mb.shape[1]):
    with pm.Model(coords={"feature": ["a", "b", "c"]}) as model:
        options = {"streaming": True, "random_seed": 1} if streaming else {}
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=200, **options)
        beta = pm.Normal("beta", 0, 5, shape=column_count(X_mb))
        named = pm.Normal("named", 0, 1, dims="feature")
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_mb @ (beta + 0 * named), sigma, observed=y_mb)
    return model


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pathfinder's own, on an easy model
@pytest.mark.parametrize(
    "streaming, column_count",
    [
        (True, lambda X_mb: X_mb.shape[1]),
        (True, lambda X_mb: X_mb.shape[-1]),
        (False, lambda X_mb: X_mb.shape[1]),
    ],
    ids=["streamed", "last-axis", "in-memory-minibatch"],
)
def test_pathfinder_fits_a_model_shaped_by_its_data(streaming, column_count):
    with shaped_by_the_data(streaming, column_count):
        idata = pmx.fit(method="pathfinder", num_paths=2, num_draws=300, random_seed=1)
    means = idata.posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, [1.0, -2.0, 0.5], atol=0.1)
    assert idata.posterior["named"].dims[-1] == "feature"


def test_fit_advi_fits_a_model_shaped_by_its_data():
    with shaped_by_the_data():
        idata = fit_advi(n_steps=3_000, random_seed=1, draws=200)
    means = idata.posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, [1.0, -2.0, 0.5], atol=0.2)
