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
"""Deterministics of streamed data: refused on one batch, computed where the user asks."""

import numpy as np
import pymc as pm
import pytest

from pymc.streaming import StreamingNotSupportedError

from pymc_extras.streaming.workflow.deterministics import (
    data_deterministics,
    without_data_deterministics,
)
from pymc_extras.streaming.workflow.rows import rows_model
from tests.streaming.workflow_models import simulate, streaming_linear

DATA = simulate(4_000, seed=10)

pytestmark = pytest.mark.filterwarnings(
    # approx.sample() on a streaming model says that observed_data leaves the stream out.
    "ignore:observed_data leaves out:UserWarning"
)


@pytest.fixture(scope="module")
def fitted():
    model = streaming_linear(DATA.X, DATA.y, deterministic=True)
    with model:
        approx = pm.fit(500, random_seed=1, progressbar=False)
    return model, approx


def test_which_deterministics_read_the_stream(fitted):
    model, _ = fitted
    with model:
        pm.Deterministic("scale", 2 * model["sigma"])
    assert data_deterministics(model) == ["mu"]


def test_one_batch_is_refused_and_chosen_rows_are_computed(fitted):
    model, approx = fitted
    with pytest.raises(StreamingNotSupportedError, match="one batch"):
        approx.sample(10)
    rows = np.array([2, 40, 3_999])
    with rows_model(model, rows=rows):
        idata = approx.sample(10, random_seed=1)
    mu = idata.posterior["mu"]
    assert mu.dims == ("chain", "draw", "row")
    np.testing.assert_array_equal(mu["row"], rows)
    np.testing.assert_array_equal(idata.observed_data["y"], DATA.y[rows])
    post = idata.posterior
    expected = post["intercept"].values[..., None] + post["beta"].values @ DATA.X[rows].T
    np.testing.assert_allclose(mu.values, expected)


def test_a_model_without_them_fits_and_samples(fitted):
    model, _ = fitted
    lean = without_data_deterministics(model)
    assert [det.name for det in lean.deterministics] == [
        name for name in (d.name for d in model.deterministics) if name != "mu"
    ]
    with lean:
        approx = pm.fit(500, random_seed=1, progressbar=False)
        idata = approx.sample(20, random_seed=1)
    assert "mu" not in idata.posterior
    assert {"beta", "intercept", "sigma"} <= set(idata.posterior.data_vars)
