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
"""A full-data pass gives the model's in-memory logp and gradient, for many points at once."""

"""Pathfinder on upstream's in-memory pm.Minibatch fits the model to all its data.

Every evaluation of such a model's log density used to draw a new random batch, so L-BFGS saw
a different function at every step. Registered with the full-data passes, the minibatch is
replaced by the data it indexes, read in chunks.
"""

import numpy as np
import pymc as pm

from pymc.pytensorf import compile, join_nonshared_inputs

import pymc_extras as pmx

from pymc_extras.streaming.passes.full_data import FullDataLogp
from pymc_extras.streaming.passes.minibatched_data import reads_minibatched_data
from tests.streaming.full_data_models import linear, simulate

N = 1_200
DATA = simulate(np.random.default_rng(7), N, groups=40, intercept=0.2)
X, Y = DATA.X, DATA.y_linear
FIT = {"num_paths": 2, "num_draws": 400, "num_draws_per_path": 400, "progressbar": False}


def posterior_moments(idata):
    posterior = idata.posterior
    names = sorted(posterior.data_vars)
    means = np.concatenate([posterior[n].mean(("chain", "draw")).values.ravel() for n in names])
    sds = np.concatenate([posterior[n].std(("chain", "draw")).values.ravel() for n in names])
    return means, sds


def test_the_full_data_pass_of_an_in_memory_minibatch_model_reads_all_its_rows():
    model = linear(*pm.Minibatch(X, Y, batch_size=64), total_size=N)
    assert reads_minibatched_data(model)
    full = FullDataLogp(model, chunk_size=300)
    reference = linear(X, Y)
    (logp, dlogp), x = join_nonshared_inputs(
        reference.initial_point(), [reference.logp(), reference.dlogp()], reference.value_vars
    )
    logp_dlogp = compile([x], [logp, dlogp])
    points = np.random.default_rng(0).normal(size=(3, full.ndim))
    result = full.evaluate(points, points)
    np.testing.assert_allclose(result.logp, [logp_dlogp(p)[0] for p in points], rtol=1e-10)
    np.testing.assert_allclose(result.grad, [logp_dlogp(p)[1] for p in points], rtol=1e-8)


def test_pathfinder_on_an_in_memory_minibatch_model_gives_the_full_data_draws():
    minibatched = linear(*pm.Minibatch(X, Y, batch_size=50), total_size=N)
    fitted = pmx.fit(method="pathfinder", model=minibatched, random_seed=1, parallel=False, **FIT)
    reference = pmx.fit(
        method="pathfinder", model=linear(X, Y), random_seed=1, parallel=False, **FIT
    )
    (mean, sd), (ref_mean, ref_sd) = posterior_moments(fitted), posterior_moments(reference)
    # Equal up to floating-point summation order; a noisy objective misses by whole sds.
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-4 * ref_sd.max())
    np.testing.assert_allclose(sd, ref_sd, rtol=1e-3)
