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
"""pymc-extras' methods without full-data passes refuse a streaming model instead of fitting a batch."""

import numpy as np
import pytest

from pymc_extras.inference.pathfinder.pathfinder import fit_blackjax_pathfinder

import pymc as pm
import pymc_extras as pmx

from pymc.exceptions import StreamingNotSupportedError


def streaming_model():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 2)), rng.normal(size=200)
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(X, y, batch_size=20, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=2)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    return model


@pytest.mark.parametrize(
    "fit, method",
    [
        (lambda model: pmx.fit(method="laplace", model=model), "find_MAP and fit_laplace"),
        (lambda model: pmx.find_MAP(model=model), "find_MAP and fit_laplace"),
        (lambda model: pmx.fit(method="dadvi", model=model), "fit_dadvi"),
        (lambda model: fit_blackjax_pathfinder(model=model), "fit_blackjax_pathfinder"),
    ],
    ids=["laplace", "find_MAP", "dadvi", "blackjax-pathfinder"],
)
def test_methods_without_full_data_passes_refuse_a_streaming_model(fit, method):
    with pytest.raises(StreamingNotSupportedError, match=rf"{method} needs the whole dataset"):
        fit(streaming_model())


def test_in_memory_models_still_fit_with_laplace():
    with pm.Model() as model:
        pm.Normal("y", pm.Normal("mu"), 1, observed=np.zeros(10))
    idata = pmx.fit(method="laplace", model=model, progressbar=False, draws=10)
    assert "mu" in idata.posterior
