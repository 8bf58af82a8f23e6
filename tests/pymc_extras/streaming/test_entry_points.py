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
"""pymc-extras' entry points on a streaming model: native, full-data, or a refusal; never a batch."""

import importlib.util

import numpy as np
import pytest

from pymc.exceptions import StreamingNotSupportedError
from pymc_extras.inference.advi import Trainer, fit_advi
from pymc_extras.inference.pathfinder.pathfinder import fit_blackjax_pathfinder

import pymc as pm
import pymc_extras as pmx

N = 400


def streaming_model(**options):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 2))
    y = X @ [1.0, -0.5] + rng.normal(size=N)
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=20, streaming=True, **options)
        beta = pm.Normal("beta", 0, 1, shape=2)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    return model


@pytest.mark.parametrize(
    "call, entry",
    [
        (lambda model: pmx.fit(method="laplace", model=model), "fit"),
        (lambda model: pmx.fit_laplace(model=model), "fit_laplace"),
        (lambda model: pmx.find_MAP(model=model), "find_MAP"),
        (lambda model: pmx.fit(method="dadvi", model=model), "fit"),
        pytest.param(
            lambda model: fit_blackjax_pathfinder(model=model),
            "fit_blackjax_pathfinder",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("blackjax") is None, reason="blackjax is not installed"
            ),
        ),
    ],
    ids=["fit-laplace", "fit_laplace", "find_MAP", "fit-dadvi", "blackjax-pathfinder"],
)
def test_methods_without_full_data_passes_refuse_a_streaming_model(call, entry):
    with pytest.raises(StreamingNotSupportedError, match=rf"^{entry} .*one batch.*Pathfinder"):
        call(streaming_model())


def test_in_memory_models_still_fit_with_laplace():
    with pm.Model() as model:
        pm.Normal("y", pm.Normal("mu"), 1, observed=np.zeros(10))
    idata = pmx.fit(method="laplace", model=model, progressbar=False, draws=10)
    assert "mu" in idata.posterior


def test_trainer_reads_a_fresh_batch_every_step():
    model = streaming_model(random_seed=3)
    stream = pm.streaming.streams_in(model.observed_RVs)[0]
    with model:
        state = Trainer(random_seed=1).fit(50, random_seed=2)
    assert stream.steps == 50 and len(state.loss_history) == 50


def test_fit_advi_agrees_with_pm_fit_on_a_stream():
    with streaming_model(random_seed=3) as model:
        idata = fit_advi(n_steps=3_000, random_seed=1, draws=2_000)
        approx = pm.fit(
            3_000, random_seed=1, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.02)
        )
    trainer_mean = idata.posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(trainer_mean, approx.mean.eval(), atol=0.1)
    np.testing.assert_allclose(trainer_mean, [1.0, -0.5], atol=0.2)
