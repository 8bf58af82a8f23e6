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
import threading

import numpy as np
import pymc as pm
import pytest

from pymc.exceptions import StreamingNotSupportedError

import pymc_extras as pmx

from pymc_extras.inference.advi import Trainer, fit_advi
from pymc_extras.inference.pathfinder.pathfinder import fit_blackjax_pathfinder

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


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def test_trainer_streams_are_seeded_and_continue_across_fits():
    def run():
        model = streaming_model(prefetch=4)  # no seed of its own: taken from the fit's
        stream = pm.streaming.streams_in(model.observed_RVs)[0]
        with model:
            trainer = Trainer(random_seed=1)
            first = trainer.fit(30, random_seed=2)
            position = stream.get_state()
            trainer.fit(10)  # continues the stream
        return first.params, position, stream.get_state()

    (params_a, at_a, end_a), (params_b, at_b, end_b) = run(), run()
    assert at_a == at_b and end_a == end_b
    rows_read = end_a["epoch"] * N + end_a["offset"]
    assert rows_read == 40 * 20  # the second fit continued: 30 + 10 batches of 20 rows
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name])
    assert not reader_threads()


class CorruptChunk(Exception):
    pass


def test_trainer_surfaces_source_errors_and_leaves_no_thread():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(N, 2)), rng.normal(size=N)

    def chunks():
        for start in range(0, N, 50):
            if start == 200:
                raise CorruptChunk(f"rows {start}-{start + 50} are corrupt")
            yield X[start : start + 50], y[start : start + 50]

    with pm.Model():
        X_mb, y_mb = pm.Minibatch(chunks, batch_size=20, streaming=True, total_size=N)
        beta = pm.Normal("beta", 0, 1, shape=2)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
        with pytest.raises(CorruptChunk, match="rows 200-250 are corrupt"):
            Trainer(random_seed=1).fit(100, random_seed=1)
    assert not reader_threads()


def test_trainer_keyboard_interrupt_keeps_what_was_fitted():
    model = streaming_model(prefetch=4)
    stream = pm.streaming.streams_in(model.observed_RVs)[0]
    batches = 0
    real_before_step = stream.before_step

    def interrupt_after_five():
        nonlocal batches
        batches += 1
        if batches == 6:
            raise KeyboardInterrupt
        real_before_step()

    stream.before_step = interrupt_after_five
    with model:  # one step per call: blocks are tested in inference/advi/test_training_blocks
        state = Trainer(random_seed=1, steps_per_call=1).fit(100, random_seed=1)
    assert len(state.loss_history) == 5 and not reader_threads()


def test_fit_advi_agrees_with_pm_fit_on_a_stream():
    with streaming_model(random_seed=3) as model:
        idata = fit_advi(n_steps=3_000, random_seed=1, draws=2_000)
    # Its InferenceData leaves the streamed observations out, and says so in its attributes.
    assert "y" not in idata.observed_data
    assert idata.observed_data.attrs["streamed_observations"] == "y"
    with model:
        approx = pm.fit(
            3_000, random_seed=1, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.02)
        )
    trainer_mean = idata.posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(trainer_mean, approx.mean.eval(), atol=0.1)
    np.testing.assert_allclose(trainer_mean, [1.0, -0.5], atol=0.2)
