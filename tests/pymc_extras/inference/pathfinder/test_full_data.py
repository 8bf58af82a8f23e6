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
"""Pathfinder on a streaming model gives in-memory Pathfinder's draws, on full-data passes."""

import functools
import threading

import numpy as np
import pymc as pm
import pytensor
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymc.exceptions import SourceDataError, StreamingNotSupportedError

import pymc_extras as pmx

from pymc_extras.inference.pathfinder import full_data
from pymc_extras.inference.pathfinder.lbfgs import LBFGSConfig
from pymc_extras.inference.pathfinder.single_path import make_single_pathfinder_fn
from tests.streaming.full_data_models import Chunked, families, linear, radon, radon_like, simulate

# Pathfinder's result leaves streamed observations out of its observed_data group (only one
# batch of them is in memory), and says so with a UserWarning: documented, and tested with the
# conversion that raises it (pymc.backends.arviz); here it is expected on every streaming fit.
pytestmark = pytest.mark.filterwarnings("ignore:observed_data leaves out:UserWarning")

N = 2_000
GROUPS = 60
RNG = np.random.default_rng(11)
DATA = simulate(RNG, N, groups=GROUPS, intercept=0.3, group_mean=1.0, group_sd=0.7)
X, Y_LINEAR = DATA.X, DATA.y_linear
FAMILIES = families(DATA)

FIT = {"num_paths": 2, "num_draws": 400, "num_draws_per_path": 400, "progressbar": False}
SERIAL = {**FIT, "parallel": False}  # in-memory references: no worker processes to start


def moments(idata):
    """Posterior means and sds of every free variable, flattened."""
    posterior = idata.posterior
    names = sorted(name for name in posterior.data_vars)
    means = np.concatenate([posterior[n].mean(("chain", "draw")).values.ravel() for n in names])
    sds = np.concatenate([posterior[n].std(("chain", "draw")).values.ravel() for n in names])
    return means, sds


@functools.cache
def in_memory(family, seed=1, **options):
    build, data = FAMILIES[family]
    return pmx.fit(method="pathfinder", model=build(*data), random_seed=seed, **SERIAL, **options)


@functools.cache
def streaming_model(family):
    build, data = FAMILIES[family]
    chunked = Chunked(*data)
    return build(*pm.Minibatch(chunked, batch_size=50, streaming=True)), chunked


def assert_same_draws(streamed, reference):
    """Equal up to floating-point summation order, which L-BFGS may amplify a little."""
    (mean, sd), (ref_mean, ref_sd) = moments(streamed), moments(reference)
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-4 * ref_sd.max())
    np.testing.assert_allclose(sd, ref_sd, rtol=1e-3)


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, N), max_size=10), chunk_size=st.integers(64, 4 * N))
@pytest.mark.parametrize("family", list(FAMILIES))
def test_streaming_pathfinder_equals_in_memory_pathfinder(family, cuts, chunk_size):
    model, chunked = streaming_model(family)
    chunked.cuts = cuts
    streamed = pmx.fit(
        method="pathfinder", model=model, random_seed=1, chunk_size=chunk_size, **FIT
    )
    assert_same_draws(streamed, in_memory(family))


@pytest.mark.parametrize("importance_sampling", ["psis", "psir", "identity", None], ids=str)
def test_importance_sampling_variants_and_paths(importance_sampling):
    model, chunked = streaming_model("linear")
    chunked.cuts = [500, 1500]
    options = {"importance_sampling": importance_sampling, "num_paths": 3, "jitter": 1.0}
    fit = {**SERIAL, **options}
    streamed = pmx.fit(method="pathfinder", model=model, random_seed=2, **fit)
    build, data = FAMILIES["linear"]
    reference = pmx.fit(method="pathfinder", model=build(*data), random_seed=2, **fit)
    assert streamed.posterior.sizes == reference.posterior.sizes
    assert set(streamed.children) == set(reference.children)
    assert_same_draws(streamed, reference)


def test_parallel_runs_the_paths_side_by_side_in_this_process_with_the_same_result():
    model, chunked = streaming_model("logistic")
    chunked.cuts = [999]
    serial = pmx.fit(method="pathfinder", model=model, random_seed=3, parallel=False, **FIT)
    before = threading.active_count()
    parallel = pmx.fit(method="pathfinder", model=model, random_seed=3, parallel=True, **FIT)
    assert threading.active_count() == before
    np.testing.assert_array_equal(moments(parallel)[0], moments(serial)[0])


def test_the_seed_decides_the_draws():
    model, chunked = streaming_model("linear")
    chunked.cuts = []
    first, again, other = (
        pmx.fit(method="pathfinder", model=model, random_seed=seed, **FIT) for seed in (4, 4, 5)
    )
    np.testing.assert_array_equal(first.posterior["beta"], again.posterior["beta"])
    assert not np.array_equal(first.posterior["beta"], other.posterior["beta"])


def test_fit_pathfinder_accepts_initvals_on_a_streaming_model():
    model, chunked = streaming_model("linear")
    chunked.cuts = [7]
    fitted = pmx.fit_pathfinder(
        model=model, random_seed=1, initvals={"intercept": np.array(0.3)}, **FIT
    )
    means = fitted.posterior["beta"].mean(("chain", "draw"))
    np.testing.assert_allclose(means, [1.0, -0.5, 0.25], atol=0.15)


def test_paths_share_every_pass(monkeypatch):
    """Each pass answers one request of every path still running: a run reads the data about
    as many times as its longest path makes requests, far fewer than all paths together."""
    made = []
    provider = full_data.full_data_pathfinder

    def remember(*args, **kwargs):
        made.append(provider(*args, **kwargs))
        return made[-1]

    # multipath_pathfinder imports the provider when it is called.
    monkeypatch.setattr(full_data, "full_data_pathfinder", remember)
    model, chunked = streaming_model("hierarchical")
    chunked.cuts = [1000]
    passes = chunked.passes
    fit = {**FIT, "num_paths": 3, "random_seed": 11}
    pmx.fit(method="pathfinder", model=model, **fit)
    [pathfinder] = made
    read = chunked.passes - passes
    assert read == pathfinder.evaluator.passes
    evaluations = pathfinder.passes.evaluations
    assert len(evaluations) == 3
    assert max(evaluations) < read <= sum(evaluations) + 3


@pytest.mark.parametrize("total_size", [N, N + 500], ids=["its_rows", "other_rows"])
def test_a_one_shot_source_is_refused_before_starting(total_size):
    """Refused whatever total_size says (a fit refuses a wrong one at the end of the epoch)."""
    chunks = iter([(X[:1000], Y_LINEAR[:1000]), (X[1000:], Y_LINEAR[1000:])])
    model = linear(*pm.Minibatch(chunks, batch_size=50, streaming=True, total_size=total_size))
    with pytest.raises(StreamingNotSupportedError, match=r"one-shot iterator.*cannot be read"):
        pmx.fit(method="pathfinder", model=model, **FIT)
    assert next(chunks)[0].shape == (1000, 3)


def test_passes_that_read_other_rows_than_declared_stop_the_fit():
    """A factory whose passes alternate between 5,000 and 6,000 rows, total_size 5,000."""
    rng = np.random.default_rng(5)
    X_big = rng.normal(size=(6_000, 3))
    y_big = X_big @ [1.0, -0.5, 0.25] + rng.normal(size=6_000)
    passes = []

    def alternating():
        passes.append(None)
        rows = 5_000 if len(passes) % 2 else 6_000
        yield X_big[:rows], y_big[:rows]

    model = linear(*pm.Minibatch(alternating, batch_size=50, streaming=True, total_size=5_000))
    with pytest.raises(
        SourceDataError,
        match=r"IterableSource\(factory alternating\(\)\) read more than 5000 \(at least 6000\) "
        r"rows, but the source declares 5000",
    ):
        pmx.fit(method="pathfinder", model=model, **FIT)
    names = [thread.name for thread in threading.enumerate()]
    assert not [n for n in names if n.startswith(("pathfinder-path", "pymc-full-data"))]


class Flaky(Chunked):
    """Fails on its fourth pass, in the middle of it."""

    def __iter__(self):
        for i, chunk in enumerate(super().__iter__()):
            if self.passes == 4 and i == 1:
                raise OSError("the disk went away")
            yield chunk


@pytest.mark.parametrize("parallel", [False, True], ids=["serial", "parallel"])
def test_source_errors_surface_with_their_type_and_nothing_is_left_running(parallel):
    flaky = Flaky(X, Y_LINEAR)
    flaky.cuts = [1000]
    model = linear(*pm.Minibatch(flaky, batch_size=50, streaming=True))
    with pytest.raises(OSError, match="the disk went away"):
        pmx.fit(method="pathfinder", model=model, parallel=parallel, **FIT)
    names = [thread.name for thread in threading.enumerate()]
    assert not [n for n in names if n.startswith(("pathfinder-path", "pymc-full-data"))]


def test_under_float32_streaming_pathfinder_agrees_with_in_memory_pathfinder():
    """Both fit the same float32 log density, up to rounding in the sums; float32 rounding moves
    L-BFGS a little either way (in-memory Pathfinder on the same rows in another order moves as
    much), so the means agree to a fraction of a posterior sd, not bit for bit as in float64."""
    county, floor, log_radon = radon_like(np.random.default_rng(0))
    fit = {**SERIAL, "random_seed": 1}
    with pytensor.config.change_flags(floatX="float32"):
        reference = pmx.fit(
            method="pathfinder", model=radon(county, floor, log_radon, as_data=True), **fit
        )
        minibatch = pm.Minibatch(county, floor, log_radon, batch_size=64, streaming=True)
        streamed = pmx.fit(method="pathfinder", model=radon(*minibatch), **fit)
    (mean, sd), (ref_mean, ref_sd) = moments(streamed), moments(reference)
    assert np.max(np.abs(mean - ref_mean) / ref_sd) < 0.1
    np.testing.assert_allclose(sd, ref_sd, rtol=0.1)


def test_upstream_single_path_function_runs_unchanged_on_the_provider_functions():
    """make_single_pathfinder_fn(logp_functions=...) is upstream's path on full-data passes:
    called directly, outside the shared passes, each request makes a pass of its own, and the
    path draws what the in-memory model's path draws."""
    model, chunked = streaming_model("linear")
    chunked.cuts = [640]
    config = LBFGSConfig().set_default_maxcor(5)
    options = {"num_draws": 200, "num_elbo_draws": 10, "jitter": 2.0, "lbfgs_config": config}
    provider = full_data.full_data_pathfinder(model, config.maxcor, True)
    path = make_single_pathfinder_fn(model, **options, logp_functions=provider.logp_functions)
    build, data = FAMILIES["linear"]
    reference = make_single_pathfinder_fn(build(*data), **options)(7)
    passes = provider.evaluator.passes
    result = path(7)
    assert provider.evaluator.passes - passes > result.lbfgs_niter  # no shared passes here
    assert result.path_status == reference.path_status
    assert result.lbfgs_niter == reference.lbfgs_niter
    np.testing.assert_allclose(result.samples, reference.samples, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(result.logP, reference.logP, rtol=1e-9)
    x = np.asarray(result.samples[0, 0])
    passes = provider.evaluator.passes
    first, again = provider.neg_logp_dlogp(x), provider.neg_logp_dlogp(x)
    assert provider.evaluator.passes == passes + 1  # the last point is cached
    np.testing.assert_array_equal(first[1], again[1])
