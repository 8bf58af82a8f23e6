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
"""The Trainer on streamed data, many steps per compiled call: the fit of one step per call."""

import threading
import warnings

import numpy as np
import pymc as pm
import pytest

from pymc.streaming import streams_in
from pymc.streaming.stream import StreamEndedWarning
from pymc.variational.blocks import BlockFunction

from pymc_extras.inference.advi import Trainer

N = 400
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 2))
Y = X @ [1.0, -0.5] + RNG.normal(size=N)

# Last digits may differ: the compiled loop may order floating-point operations differently.
RTOL = 1e-9


def streaming_model(source=(X, Y), **options):
    options.setdefault("random_seed", 3)
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(*source, batch_size=20, streaming=True, **options)
        beta = pm.Normal("beta", 0, 1, shape=2)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb)
    return model, streams_in([y_mb])[0]


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def train(steps_per_call, fits=(37,), backend=None, **options):
    model, stream = streaming_model(**options)
    with model, warnings.catch_warnings():
        # PyTensor's JAX backend warns on every compile, one step per call or many.
        warnings.filterwarnings("ignore", ".*RandomType SharedVariables", UserWarning)
        warnings.filterwarnings("ignore", "Skipping Assert", UserWarning)
        trainer = Trainer(random_seed=1, steps_per_call=steps_per_call, backend=backend)
        for i, n in enumerate(fits):
            state = trainer.fit(n, random_seed=2 + i)  # reseeds the step's generators
    return trainer, state, stream, model


def assert_same_training(blocks, one_by_one):
    (_, state, stream, _), (_, expected, expected_stream, _) = blocks, one_by_one
    assert stream.get_state() == expected_stream.get_state()
    assert state.step == expected.step
    np.testing.assert_allclose(state.loss_history, expected.loss_history, rtol=RTOL)
    for name, value in expected.params.items():
        np.testing.assert_allclose(state.params[name], value, rtol=RTOL)
    for name, value in expected.optimizer_state.items():
        np.testing.assert_allclose(state.optimizer_state[name], value, rtol=RTOL)


@pytest.mark.parametrize("backend", ["numba", "jax"])
def test_trainer_in_blocks_trains_as_one_step_per_call(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    # Two fits (the second continues the stream), each ending in a partial block.
    blocks = train(8, fits=(37, 21), backend=backend)
    assert isinstance(blocks[0]._step_fn, BlockFunction)
    assert_same_training(blocks, train(1, fits=(37, 21), backend=backend))
    assert not reader_threads()


def test_a_snapshot_resumes_a_trainer_in_blocks():
    trainer, _, stream, model = train(8, fits=(16,))
    snapshot, position = trainer.state, stream.get_state()
    with model:
        continued = trainer.fit(20, random_seed=9)
        stream.set_state(position)
        again = trainer.fit(20, state=snapshot, random_seed=9)
    assert again.step == continued.step == 36
    np.testing.assert_array_equal(again.loss_history[16:], continued.loss_history[16:])
    for name, value in continued.params.items():
        np.testing.assert_array_equal(again.params[name], value)


def test_a_one_shot_stream_ending_mid_block_trains_on_the_batches_it_had():
    def run(steps_per_call):
        chunks = ((X[i : i + 30], Y[i : i + 30]) for i in range(0, N, 30))
        model, stream = streaming_model(source=[chunks], total_size=N)
        with model, pytest.warns(StreamEndedWarning):
            trainer = Trainer(random_seed=1, steps_per_call=steps_per_call)
            state = trainer.fit(1_000, random_seed=2)
        return trainer, state, stream, model

    blocks = run(8)  # 20 batches: blocks of 8, 8 and 4
    assert len(blocks[1].loss_history) == 20
    assert_same_training(blocks, run(1))
    assert not reader_threads()


def test_keyboard_interrupt_between_blocks_keeps_the_blocks_that_ran():
    model, stream = streaming_model(prefetch=4)
    real_before_block = stream.before_block
    calls = 0

    def interrupt_third_block(steps, blocks):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real_before_block(steps, blocks)

    stream.before_block = interrupt_third_block
    with model:
        state = Trainer(random_seed=1, steps_per_call=8).fit(100, random_seed=1)
    assert len(state.loss_history) == 16 and state.step == 16 and stream.steps == 16
    assert not reader_threads()


def test_keyboard_interrupt_mid_block_keeps_the_loss_of_every_step_applied():
    # The second block (steps 9 to 16) ran in one call; Ctrl-C comes as its third step is
    # served. Its 8 steps were applied, and the history holds all their losses.
    model, stream = streaming_model()
    with model:
        trainer = Trainer(random_seed=1, steps_per_call=8)
        trainer.fit(1, random_seed=1)  # compiles the step
        step_fn = trainer._step_fn
        served = 0
        real_next_step = step_fn.next_step

        def interrupt_in_the_second_block(feeds, remaining):
            nonlocal served
            output = real_next_step(feeds, remaining)
            served += 1
            if served == 11:
                raise KeyboardInterrupt
            return output

        step_fn.next_step = interrupt_in_the_second_block
        state = trainer.fit(100, random_seed=1)
    assert len(state.loss_history) == state.step == stream.steps
    assert state.step == 1 + 8 + 8  # the first fit's step, then two blocks of 8
    assert np.isfinite(state.loss_history).all()
