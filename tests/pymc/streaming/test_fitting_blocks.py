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
"""Many steps per compiled call on streaming minibatches: the same fit as one step per call,
on every backend and method; callbacks see every step unless they say they work on blocks."""

import threading
import warnings

import numpy as np
import pytest

from pytensor.compile import Function

import pymc as pm

from pymc.data_feed import feeding_data
from pymc.streaming import get_stream
from pymc.variational.blocks import MAX_STEPS_PER_CALL, BlockFunction
from pymc.variational.callbacks import CheckParametersConvergence, Tracker

N = 600
RNG = np.random.default_rng(1)
X = RNG.normal(size=(N, 3))
Y = X @ [1.0, -2.0, 0.5] + RNG.normal(size=N)
GROUPS = RNG.integers(5, size=N)

BACKENDS = ["c", "numba", "jax"]

# How far a block's results may stray from one step per call. The compiled loop may order
# floating-point operations differently (numba's fastmath; PyTensor rewrites the loop's inner
# graph on its own), so the last digits may differ; 200 steps of Adam keep that far below this.
RTOL = 1e-9


def regression(**minibatch):
    minibatch.setdefault("batch_size", 40)
    minibatch.setdefault("random_seed", 2)
    with pm.Model() as model:
        X_mb, y_mb, g_mb = pm.Minibatch(X, Y, GROUPS, streaming=True, **minibatch)
        beta = pm.Normal("beta", 0, 10, shape=3)
        offset = pm.Normal("offset", 0, 1, shape=5)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_mb @ beta + offset[g_mb], sigma, observed=y_mb)
    return model, get_stream(X_mb)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def fit(steps_per_call, n=203, backend="numba", method="advi", **options):
    model, stream = regression()
    with model, warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*RandomType SharedVariables", UserWarning)  # JAX
        approx = pm.fit(
            n,
            method=method,
            random_seed=4,
            progressbar=False,
            backend=backend,
            steps_per_call=steps_per_call,
            obj_optimizer=pm.adam(learning_rate=0.02),
            **options,
        )
    return approx, stream


def assert_same_fit(blocks, one_by_one, rtol=RTOL):
    (approx, stream), (expected, expected_stream) = blocks, one_by_one
    assert stream.get_state() == expected_stream.get_state()
    assert stream.steps == expected_stream.steps
    np.testing.assert_allclose(approx.hist, expected.hist, rtol=rtol)
    for ours, theirs in zip(approx.params, expected.params):
        np.testing.assert_allclose(ours.get_value(), theirs.get_value(), rtol=rtol)


class StepLog:
    """A callback that works on blocks: it records each step's number and loss history."""

    works_on_blocks = True

    def __init__(self, stream=None):
        self.stream = stream
        self.steps = []

    def __call__(self, approx, losses, i):
        position = None if self.stream is None else self.stream.steps
        self.steps.append((i, None if losses is None else len(losses), position))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fit_in_blocks_is_the_fit_of_one_step_per_call(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    # 203 steps in blocks of 16: twelve full blocks and a last one of 11 steps (on JAX, whose
    # compiled loop has a fixed length, those run one per call).
    assert_same_fit(fit(16, backend=backend), fit(1, backend=backend))
    assert not reader_threads()


def test_full_rank_advi_in_blocks():
    assert_same_fit(fit(8, n=37, method="fullrank_advi"), fit(1, n=37, method="fullrank_advi"))


def test_svgd_in_blocks():
    def run(steps_per_call):
        model, stream = regression()
        with model:
            inference = pm.SVGD(n_particles=4)
            # SVGD jitters its particles with a generator no seed reaches: start them alike.
            [particles] = inference.approx.params
            particles.set_value(np.linspace(-1, 1, particles.get_value().size).reshape(4, -1))
            inference.fit(37, progressbar=False, steps_per_call=steps_per_call)
        return inference.approx, stream

    assert_same_fit(run(8), run(1))


def test_the_step_function_runs_blocks_only_when_the_loop_asks():
    model, _ = regression()
    with model, feeding_data():
        inference = pm.ADVI(random_seed=1)
        blocks = inference.objective.step_function(score=True, steps_per_call=8)
        one = inference.objective.step_function(score=True)
        also_one = inference.objective.step_function(score=True, steps_per_call=1)
        # compile itself stays pure: a Function, whatever context it is called in.
        plain = pm.pytensorf.compile([], model["beta"].sum())
    assert isinstance(blocks, BlockFunction) and blocks.steps_per_call == 8
    assert type(one) is type(also_one) is type(plain) is Function
    # The generators and parameters are the one-step function's: a loop can reseed them.
    assert [i.variable for i in blocks.maker.inputs if i.update is not None]


def test_a_step_that_draws_without_updating_its_generator_runs_one_step_per_call():
    # pm.fit(score=False) compiles ADVI's step with no output, and compile then updates none of
    # its generators: every call draws the same numbers, which a loop cannot reproduce.
    model, _ = regression()
    with model, feeding_data():
        step = pm.ADVI(random_seed=1).objective.step_function(score=False, steps_per_call=8)
    assert isinstance(step, Function)


def test_score_false_without_random_draws_runs_in_blocks():
    model, _ = regression()
    with model, feeding_data():
        step = pm.SVGD(n_particles=3).objective.step_function(score=False, steps_per_call=8)
    assert isinstance(step, BlockFunction) and step.steps_per_call == 8


def test_callbacks_that_work_on_blocks_run_per_step_after_the_block():
    model, stream = regression(prefetch=0)
    log = StepLog(stream)
    with model:
        inference = pm.ADVI(random_seed=1)
        inference.fit(10, progressbar=False, callbacks=[log], steps_per_call=4)
    assert isinstance(inference.state.step, BlockFunction)
    assert [entry[0] for entry in log.steps] == list(range(1, 11))
    assert [entry[1] for entry in log.steps] == list(range(1, 11))  # the loss history per step
    assert [entry[2] for entry in log.steps] == [4] * 4 + [8] * 4 + [10] * 2  # after the block


def test_auto_runs_blocks_without_callbacks_and_with_callbacks_that_work_on_blocks():
    for callbacks in ([], [StepLog()]):
        model, _ = regression()
        with model:
            inference = pm.ADVI(random_seed=1)
            inference.fit(5, progressbar=False, callbacks=callbacks, backend="numba")
        assert isinstance(inference.state.step, BlockFunction)
        assert inference.state.step.steps_per_call == MAX_STEPS_PER_CALL


class ParameterRecorder:
    """A plain callback, as users write them: the first parameter after every step."""

    def __init__(self):
        self.seen = []

    def __call__(self, approx, losses, i):
        self.seen.append(approx.params[0].get_value().copy())


def _pymc_callbacks():
    return [
        CheckParametersConvergence(every=100, diff="absolute", tolerance=1e-3),
        Tracker(beta=lambda approx, hist, i: approx.params[0].get_value().copy()),
        ParameterRecorder(),
    ]


def test_pymc_callbacks_see_every_step_with_the_defaults():
    # The review's example: with blocks of 256, CheckParametersConvergence(every=100) compared
    # parameters that had not moved since the last block and stopped the fit after 99 steps.
    def run(**options):
        model, stream = regression(batch_size=128)
        converge, tracker, recorder = _pymc_callbacks()
        with model:
            approx = pm.fit(
                2_000,
                callbacks=[converge, tracker, recorder],
                obj_optimizer=pm.adam(learning_rate=0.01),
                random_seed=1,
                progressbar=False,
                **options,
            )
        return approx, stream, tracker, recorder

    approx, stream, tracker, recorder = run()
    expected, expected_stream, expected_tracker, expected_recorder = run(steps_per_call=1)
    assert stream.steps == expected_stream.steps == len(approx.hist) == len(recorder.seen)
    np.testing.assert_array_equal(approx.hist, expected.hist)
    np.testing.assert_array_equal(approx.mean.eval(), expected.mean.eval())
    np.testing.assert_array_equal(tracker["beta"], expected_tracker["beta"])
    distinct = {value.tobytes() for value in recorder.seen}
    assert len(distinct) == len(recorder.seen)  # a new parameter value after every step
    np.testing.assert_array_equal(recorder.seen, expected_recorder.seen)


def test_refine_continues_in_blocks():
    def run(steps_per_call):
        model, stream = regression()
        with model:
            inference = pm.ADVI(random_seed=3)
            inference.fit(30, progressbar=False, steps_per_call=steps_per_call)
            assert isinstance(inference.state.step, BlockFunction) == (steps_per_call > 1)
            inference.refine(21, progressbar=False)
        return inference.approx, stream

    assert_same_fit(run(8), run(1))


def test_after_ctrl_c_the_history_holds_the_loss_of_every_step_applied():
    # A Ctrl-C at step 3 of a block of 8: the block's 8 steps were applied in one call.
    class Interrupt:
        works_on_blocks = True

        def __call__(self, approx, losses, i):
            if i == 3:
                raise KeyboardInterrupt

    interrupted, stream = fit(8, n=100, callbacks=[Interrupt()])
    expected, _ = fit(1, n=8)
    assert stream.steps == len(interrupted.hist) == 8
    np.testing.assert_allclose(interrupted.hist, expected.hist, rtol=RTOL)
    for ours, theirs in zip(interrupted.params, expected.params):
        np.testing.assert_allclose(ours.get_value(), theirs.get_value(), rtol=RTOL)


def test_a_one_shot_source_that_ends_mid_block_runs_the_batches_it_had():
    def run(steps_per_call):
        chunks = ((X[i : i + 70], Y[i : i + 70], GROUPS[i : i + 70]) for i in range(0, N, 70))
        with pm.Model() as model:
            X_mb, y_mb, g_mb = pm.Minibatch(
                chunks, batch_size=50, streaming=True, total_size=N, random_seed=1
            )
            beta = pm.Normal("beta", 0, 10, shape=3)
            offset = pm.Normal("offset", 0, 1, shape=5)
            pm.Normal("y", X_mb @ beta + offset[g_mb], 1, observed=y_mb)
        stream = get_stream(X_mb)
        with model, pytest.warns(pm.streaming.stream.StreamEndedWarning, match="after 12"):
            approx = pm.fit(1000, progressbar=False, random_seed=1, steps_per_call=steps_per_call)
        return approx, stream

    blocks = run(8)  # blocks of 8 and 4: the source has 12 batches
    assert blocks[1].steps == len(blocks[0].hist) == 12
    assert_same_fit(blocks, run(1))
    assert not reader_threads()
