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
"""A streaming model at every entry point: fed natively, or refused; never computed on one batch."""

import importlib.util
import threading
import warnings

import cloudpickle
import numpy as np
import pytest

import pymc as pm

from pymc.data_feed import feeding_data
from pymc.exceptions import SourceDataError, StreamingError, StreamingNotSupportedError

N = 300
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 2))
Y = X @ [1.0, -0.5] + RNG.normal(size=N)


def streaming_model(**options):
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=30, streaming=True, **options)
        beta = pm.Normal("beta", 0, 1, shape=2)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    return model


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


ENTRY_POINTS = {
    "sample": lambda m: pm.sample(draws=5, tune=5, chains=1, progressbar=False, model=m),
    "sample_smc": lambda m: pm.sample_smc(draws=10, chains=1, progressbar=False, model=m),
    "find_MAP": lambda m: pm.find_MAP(model=m, progressbar=False, jitter=False),
    "sample_prior_predictive": lambda m: pm.sample_prior_predictive(draws=5, model=m),
    "sample_posterior_predictive": lambda m: pm.sample_posterior_predictive(
        pm.fit(5, model=m, progressbar=False).sample(5), model=m, progressbar=False
    ),
    "compute_log_likelihood": lambda m: pm.compute_log_likelihood(
        pm.fit(5, model=m, progressbar=False).sample(5), model=m, progressbar=False
    ),
    "compile_logp": lambda m: m.compile_logp(),
    "compile_dlogp": lambda m: m.compile_dlogp(),
    "compile_d2logp": lambda m: m.compile_d2logp(),
    "logp_dlogp_function": lambda m: m.logp_dlogp_function(ravel_inputs=True),
    "point_logps": lambda m: m.point_logps(),
    "draw": lambda m: pm.draw(m["y"]),
}
for sampler in ("numpyro", "blackjax", "nutpie"):
    ENTRY_POINTS[f"sample_{sampler}"] = pytest.param(
        lambda m, sampler=sampler: pm.sample(
            draws=5, tune=5, chains=1, nuts_sampler=sampler, progressbar=False, model=m
        ),
        marks=pytest.mark.skipif(not _installed(sampler), reason=f"{sampler} is not installed"),
    )


@pytest.mark.parametrize("call", ENTRY_POINTS.values(), ids=ENTRY_POINTS.keys())
def test_every_other_way_of_evaluating_the_model_refuses(call):
    with pytest.raises(StreamingNotSupportedError, match=r"one batch .*'stream\d+'.*pm\.fit"):
        call(streaming_model())


def test_the_refusal_names_what_was_called():
    with pytest.raises(StreamingNotSupportedError, match=r"^sample_posterior_predictive \("):
        ENTRY_POINTS["sample_posterior_predictive"](streaming_model())


def test_parts_that_read_no_streamed_data_still_compile():
    model = streaming_model()
    draws = pm.sample_prior_predictive(draws=5, model=model, var_names=["beta"])
    assert draws.prior["beta"].shape == (1, 5, 2)
    approx = pm.fit(20, model=model, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quiet: what observed_data leaves out, it says in attrs
        idata = approx.sample(10)
    assert idata.posterior["beta"].shape == (1, 10, 2) and "y" not in idata.observed_data
    assert idata.observed_data.attrs["streamed_observations"] == "y"
    log_prior = pm.compute_log_prior(idata, model=model, progressbar=False)  # exact: no data
    assert log_prior.log_prior["beta"].shape == (1, 10, 2)


def test_feeding_data_lets_a_loop_compile_what_it_feeds():
    model = streaming_model(shuffle_buffer=0)
    with feeding_data():
        logp = model.compile_logp()
    with pytest.raises(StreamingNotSupportedError):
        model.compile_logp()  # the permission ends with the block
    assert np.isfinite(logp({"beta": np.zeros(2)}))


def test_observations_and_covariates_from_separate_streams_are_refused():
    with pm.Model():
        X_mb = pm.Minibatch(X, batch_size=30, streaming=True)
        y_mb = pm.Minibatch(Y, batch_size=30, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=2)
        with pytest.raises(SourceDataError, match=r"2 separate data feeds .* one pm.Minibatch"):
            pm.Normal("y", X_mb @ beta, 1, observed=y_mb)


def test_a_stream_and_an_in_memory_minibatch_in_one_likelihood_are_refused():
    with pm.Model():
        X_mb = pm.Minibatch(X, batch_size=30)
        y_mb = pm.Minibatch(Y, batch_size=30, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=2)
        with pytest.raises(SourceDataError, match="both streamed data and an in-memory"):
            pm.Normal("y", X_mb @ beta, 1, observed=y_mb)


def test_fitted_models_and_approximations_pickle_with_their_stream_position():
    model = streaming_model(random_seed=5, prefetch=4)
    approx = pm.fit(37, model=model, random_seed=1, progressbar=False)
    stream = pm.streaming.streams_in(model.observed_RVs)[0]
    position = stream.get_state()
    model2, approx2 = cloudpickle.loads(cloudpickle.dumps((model, approx)))
    stream2 = pm.streaming.streams_in(model2.observed_RVs)[0]
    assert stream2.get_state() == position and stream2 is not stream
    np.testing.assert_array_equal(approx2.mean.eval(), approx.mean.eval())
    # The copy continues with the batches the original would have read next.
    np.testing.assert_array_equal(stream2.next_batch()[1], stream.next_batch()[1])
    approx3 = pm.fit(10, model=model2, progressbar=False)
    assert np.isfinite(approx3.mean.eval()).all() and threading.active_count() == 1


def test_two_models_fit_in_two_threads_and_one_stream_feeds_one_fit_at_a_time():
    models = [streaming_model(random_seed=seed, prefetch=4) for seed in (1, 2)]
    results, errors = {}, []

    def fit(i):
        try:
            results[i] = pm.fit(300, model=models[i], random_seed=i, progressbar=False)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=fit, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and set(results) == {0, 1}

    model = models[0]
    stream = pm.streaming.streams_in(model.observed_RVs)[0]
    stream.start(restart=True, random_seed=1)  # as a fit running in another thread would
    try:
        with pytest.raises(StreamingError, match="already feeding a fit"):
            pm.fit(5, model=model, progressbar=False)
    finally:
        stream.stop()
    assert threading.active_count() == 1
