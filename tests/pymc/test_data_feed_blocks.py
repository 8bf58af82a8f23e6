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
"""Many steps per compiled call: the same fit as one step per call, on any feed and backend."""

import threading
import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile import get_mode

import pymc as pm

from pymc.data_feed import BlockFunction, DataFeed, FedSharedVariable, feeding_data
from pymc.data_feed.blocks import (
    BLOCK_BYTES,
    MAX_STEPS_PER_CALL,
    MAX_STEPS_PER_CALL_JAX,
    choose_steps_per_call,
)
from pymc.data_feed.loop import DataFeeds
from pymc.streaming import get_stream
from pymc.variational.callbacks import CheckParametersConvergence

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


def assert_same_fit(blocks, one_by_one):
    (approx, stream), (expected, expected_stream) = blocks, one_by_one
    assert stream.get_state() == expected_stream.get_state()
    assert stream.steps == expected_stream.steps
    np.testing.assert_allclose(approx.hist, expected.hist, rtol=RTOL)
    for ours, theirs in zip(approx.params, expected.params):
        np.testing.assert_allclose(ours.get_value(), theirs.get_value(), rtol=RTOL)


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


def test_the_step_function_is_a_block_function_only_when_asked():
    model, _ = regression()
    with model:
        inference = pm.ADVI(random_seed=1)
        with feeding_data(steps_per_call=8):
            blocks = inference.objective.step_function(score=True)
        with feeding_data():
            one = inference.objective.step_function(score=True)
        with feeding_data(steps_per_call=1):
            also_one = inference.objective.step_function(score=True)
    assert isinstance(blocks, BlockFunction) and blocks.steps_per_call == 8
    assert not isinstance(one, BlockFunction) and not isinstance(also_one, BlockFunction)
    # The generators and parameters are the one-step function's: a loop can reseed them.
    assert [i.variable for i in blocks.maker.inputs if i.update is not None]


def test_a_step_that_draws_without_updating_its_generator_runs_one_step_per_call():
    # pm.fit(score=False) compiles ADVI's step with no output, and compile then updates none of
    # its generators: every call draws the same numbers, which a loop cannot reproduce.
    model, _ = regression()
    with model, feeding_data(steps_per_call=8):
        step = pm.ADVI(random_seed=1).objective.step_function(score=False)
    assert not isinstance(step, BlockFunction)


def test_score_false_without_random_draws_runs_in_blocks():
    model, _ = regression()
    with model, feeding_data(steps_per_call=8):
        step = pm.SVGD(n_particles=3).objective.step_function(score=False)
    assert isinstance(step, BlockFunction) and step.steps_per_call == 8


def test_callbacks_run_per_step_after_the_block():
    model, stream = regression(prefetch=0)
    seen = []

    def look(approx, losses, i):
        seen.append((i, len(losses), stream.steps, stream.buffers[1].get_value()[:3].copy()))

    with model:
        pm.fit(10, progressbar=False, callbacks=[look], steps_per_call=4, random_seed=1)
    assert [entry[0] for entry in seen] == list(range(1, 11))
    assert [entry[1] for entry in seen] == list(range(1, 11))  # the loss history per step
    assert [entry[2] for entry in seen] == [4] * 4 + [8] * 4 + [10] * 2  # after the block
    # Each step's callback sees that step's batch in the stream's buffers.
    _, expected = regression(prefetch=0)
    expected.begin_fit(None)
    for entry in seen:
        np.testing.assert_array_equal(entry[3], expected.next_batch()[1][:3])


def test_a_callback_that_needs_every_step_makes_auto_one_step_per_call():
    class Averaging:  # reads the parameters after every step, as iterate averaging does
        needs_every_step = True

        def __call__(self, approx, losses, i):
            pass

    model, _ = regression()
    with model:
        inference = pm.ADVI(random_seed=1)
        with feeding_data(steps_per_call="auto", callbacks=[Averaging()]):
            one = inference.objective.step_function(score=True)
        with feeding_data(steps_per_call=8, callbacks=[Averaging()]):  # asked for: kept
            blocks = inference.objective.step_function(score=True)
        inference.fit(5, progressbar=False, callbacks=[Averaging()])
    assert not isinstance(one, BlockFunction) and blocks.steps_per_call == 8
    assert not isinstance(inference.state.step, BlockFunction)


def test_convergence_checks_are_exact_when_every_is_a_multiple_of_the_block():
    def steps_until_converged(steps_per_call):
        model, stream = regression(random_seed=1)
        with model:
            pm.fit(
                100_000,
                progressbar=False,
                random_seed=1,
                steps_per_call=steps_per_call,
                callbacks=[CheckParametersConvergence(every=32, tolerance=0.5)],
            )
        return stream.steps

    assert 0 < steps_until_converged(16) == steps_until_converged(1) < 100_000


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


class ListFeed(DataFeed):
    """A feed of the hook's own kind: batches from a list; raises what it is given."""

    def __init__(self, batches, fail_at=None):
        self.name = "list"
        self.batches = batches
        self.fail_at = fail_at
        self.buffer = FedSharedVariable(
            type=pt.TensorType("float64", shape=(None,)), value=batches[0], strict=False
        )
        self.buffer.data_feed = self
        self.position = 0

    @property
    def shared_variables(self):
        return (self.buffer,)

    @property
    def num_rows(self):
        return sum(len(batch) for batch in self.batches)

    def start(self, *, restart, random_seed):
        self.position = 0 if restart else self.position

    def before_step(self):
        if self.position == self.fail_at:
            raise OSError(f"batch {self.position} is unreadable")
        if self.position == len(self.batches):
            raise StopIteration("out of batches")
        self.buffer.set_value(self.batches[self.position])
        self.position += 1


def test_any_feed_hands_over_blocks_through_before_step():
    feed = ListFeed([np.full(10, float(i)) for i in range(23)])
    seen = []
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1, observed=feed.buffer)
        inference = pm.ADVI()
        inference.fit(
            10,
            progressbar=False,
            steps_per_call=4,
            callbacks=[lambda *_: seen.append(feed.buffer.get_value()[0])],
        )
        inference.refine(20, progressbar=False)  # ends with the feed, after 13 more steps
    assert seen == [float(i) for i in range(23)]
    assert len(inference.hist) == 23 and feed.position == 23


def test_an_error_mid_block_comes_after_the_batches_before_it():
    feed = ListFeed([np.full(10, float(i)) for i in range(20)], fail_at=6)
    steps = []
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1, observed=feed.buffer)
        with pytest.raises(OSError, match="batch 6 is unreadable"):
            pm.fit(
                20,
                progressbar=False,
                steps_per_call=4,
                callbacks=[lambda approx, losses, i: steps.append(i)],
            )
    assert steps == [1, 2, 3, 4, 5, 6]


class ChangingFeed(ListFeed):
    def before_step(self):
        super().before_step()
        self.buffer.set_value(np.zeros(self.position))


def test_a_feed_whose_batches_change_shape_is_refused_in_blocks():
    feed = ChangingFeed([np.zeros(3)] * 10)
    with pm.Model():
        pm.Normal("y", pm.Normal("mu"), 1, observed=feed.buffer)
        with pytest.raises(ValueError, match=r"batches of one shape.*steps_per_call=1"):
            pm.fit(10, progressbar=False, steps_per_call=4)


@settings(max_examples=30, deadline=None)
@given(
    steps_per_call=st.sampled_from([2, 3, 8]),
    batches=st.integers(1, 30),
    n=st.integers(1, 40),
)
def test_blocks_serve_every_batch_once_in_order(steps_per_call, batches, n):
    # The loop's view of DataFeeds.step: per-step outputs in order, the fed variable holding
    # the step's batch, the end of the data after the batches there were.
    feed = ListFeed([np.full(4, float(i)) for i in range(batches)])
    step = _identity_step(feed, steps_per_call)
    served = []
    with DataFeeds(step, restart=True) as feeds:
        try:
            for i in range(n):
                value = feeds.step(step, n - i)
                served.append(float(value))
                assert feed.buffer.get_value()[0] == value
        except StopIteration:
            pass
    assert served == [float(i) for i in range(min(n, batches))]
    assert feed.position == min(batches, n)  # a last block is no longer than the loop


def _identity_step(feed, steps_per_call):
    """A compiled step reading ``feed``: it outputs the batch's first value, and counts."""
    count = pytensor.shared(np.zeros(()), name="count")
    with feeding_data(steps_per_call=steps_per_call):
        return pm.pytensorf.compile([], feed.buffer[0], updates={count: count + 1})


@pytest.mark.parametrize(
    "request_, bytes_per_step, mode, expected",
    [
        ("auto", 256 * 11 * 8, "NUMBA", MAX_STEPS_PER_CALL),
        ("auto", 1024 * 11 * 8, "NUMBA", 64),
        ("auto", BLOCK_BYTES, "NUMBA", 1),
        ("auto", 256 * 11 * 8, "JAX", MAX_STEPS_PER_CALL_JAX),
        ("auto", 256 * 11 * 8, "FAST_COMPILE", 1),
        (32, 256 * 11 * 8, "FAST_COMPILE", 32),
        (None, 8, "NUMBA", 1),
    ],
    ids=["numba", "numba-1024", "numba-huge", "jax", "c", "asked", "none"],
)
def test_steps_per_call_is_chosen_from_the_backend_and_the_batch_bytes(
    request_, bytes_per_step, mode, expected
):
    fed = FedSharedVariable(
        type=pt.TensorType("int8", shape=(None,)),
        value=np.zeros(bytes_per_step, "int8"),
        strict=False,
    )
    assert choose_steps_per_call(request_, [fed], get_mode(mode)) == expected


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "fast"], ids=repr)
def test_feeding_data_refuses_a_bad_steps_per_call(bad):
    with pytest.raises(ValueError, match="steps_per_call must be"):
        with feeding_data(steps_per_call=bad):
            pass
