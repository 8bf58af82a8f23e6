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
"""Many steps per compiled call: the same fit as one step per call, on any feed; callbacks see
every step unless they say they work on blocks. The feed here is a plain list of batches."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile import get_mode

import pymc as pm

from pymc.data_feed import DataFeeds, FedSharedVariable, feeding_data
from pymc.variational.blocks import (
    BLOCK_BYTES,
    MAX_STEPS_PER_CALL,
    MAX_STEPS_PER_CALL_JAX,
    BlockFunction,
    _choose_steps_per_call,
    compile_steps,
    steps_per_call_for,
    works_on_blocks,
)
from pymc.variational.callbacks import CheckParametersConvergence, Tracker
from tests.list_feed import ListFeed

# How far a block's results may stray from one step per call (the compiled loop may order
# floating-point operations differently).
RTOL = 1e-9


class StepLog:
    """A callback that works on blocks: it records each step's number and loss history."""

    works_on_blocks = True

    def __init__(self, stream=None):
        self.stream = stream
        self.steps = []

    def __call__(self, approx, losses, i):
        position = None if self.stream is None else self.stream.steps
        self.steps.append((i, None if losses is None else len(losses), position))


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


def list_model(batches=20, rows=10):
    """A model observing a list feed's batches: what a fitting loop feeds, with no stream."""
    feed = ListFeed([np.full(rows, float(i)) for i in range(batches)])
    with pm.Model() as model:
        pm.Normal("y", pm.Normal("mu", 0, 10), 1, observed=feed.buffer)
    return model


def test_any_data_feed_drives_pm_fit_and_refine():
    feed = ListFeed([np.full(10, float(i)) for i in range(16)])
    seen = []
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        obs = pm.Normal("y", mu, 1, observed=feed.buffer)
        inference = pm.ADVI()
        inference.fit(
            10, progressbar=True, callbacks=[lambda *_: seen.append(feed.buffer.get_value()[0])]
        )
        inference.refine(10, progressbar=False)  # continues, and ends when the feed runs out
    assert obs.owner.inputs[1].eval() == 160  # total_size, from the feed's rows
    assert seen == [float(i) for i in range(16)]
    assert feed.calls == [("start", True), ("stop",), ("start", False), ("stop",)]


@pytest.mark.parametrize("callback", _pymc_callbacks(), ids=lambda cb: type(cb).__name__)
def test_many_steps_per_call_with_a_callback_that_needs_every_step_is_refused(callback):
    model = list_model()
    with model, pytest.raises(ValueError, match=r"steps_per_call=64 .*see the parameters only"):
        pm.fit(10, progressbar=False, callbacks=[callback], steps_per_call=64)
    with model:
        approx = pm.fit(3, progressbar=False, callbacks=[callback], steps_per_call=1)
    assert len(approx.hist) == 3


def test_which_callbacks_work_on_blocks():
    def plain(approx, losses, i):
        pass

    aware = StepLog()
    assert works_on_blocks(aware) and not works_on_blocks(plain)
    assert not works_on_blocks(CheckParametersConvergence())
    assert steps_per_call_for("auto", [aware]) == "auto"
    assert steps_per_call_for("auto", [aware, plain]) == 1
    assert steps_per_call_for(8, [aware]) == 8
    assert steps_per_call_for(1, [plain]) == 1


@pytest.mark.parametrize("bad", [0, -3, True, 2.5, "fast", None], ids=repr)
def test_a_bad_steps_per_call_is_refused_before_compiling(bad):
    model = list_model()
    with model, pytest.raises(ValueError, match="steps_per_call must be"):
        pm.fit(10, progressbar=False, steps_per_call=bad)


def test_any_feed_hands_over_blocks_through_before_step():
    def run(steps_per_call):
        feed = ListFeed([np.full(10, float(i)) for i in range(23)])
        with pm.Model():
            mu = pm.Normal("mu", 0, 10)
            pm.Normal("y", mu, 1, observed=feed.buffer)
            inference = pm.ADVI(random_seed=2)
            inference.fit(10, progressbar=False, steps_per_call=steps_per_call)
            inference.refine(20, progressbar=False)  # ends with the feed, after 13 more steps
        return inference, feed

    blocks, feed = run(4)
    one_by_one, _ = run(1)
    assert isinstance(blocks.state.step, BlockFunction)
    assert len(blocks.hist) == 23 and feed.position == 23
    np.testing.assert_allclose(blocks.hist, one_by_one.hist, rtol=RTOL)
    np.testing.assert_array_equal(feed.buffer.get_value(), np.full(10, 22.0))  # the last batch


def test_an_error_mid_block_comes_after_the_batches_before_it():
    feed = ListFeed([np.full(10, float(i)) for i in range(20)], fail_at=6)
    log = StepLog()
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1, observed=feed.buffer)
        with pytest.raises(OSError, match="batch 6 is unreadable"):
            pm.fit(20, progressbar=False, steps_per_call=4, callbacks=[log])
    assert [entry[0] for entry in log.steps] == [1, 2, 3, 4, 5, 6]


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
    # The loop's view of DataFeeds.step: per-step outputs in order, the end of the data after
    # the batches there were.
    feed = ListFeed([np.full(4, float(i)) for i in range(batches)])
    step = _identity_step(feed, steps_per_call)
    served = []
    with DataFeeds(step, restart=True) as feeds:
        try:
            for i in range(n):
                served.append(float(feeds.step(step, n - i)))
        except StopIteration:
            pass
    assert served == [float(i) for i in range(min(n, batches))]
    assert feed.position == min(batches, n)  # a last block is no longer than the loop


def _identity_step(feed, steps_per_call):
    """A compiled step reading ``feed``: it outputs the batch's first value, and counts."""
    count = pytensor.shared(np.zeros(()), name="count")
    with feeding_data():
        step = compile_steps(
            feed.buffer[0], updates={count: count + 1}, steps_per_call=steps_per_call
        )
    assert isinstance(step, BlockFunction)
    return step


@pytest.mark.parametrize(
    "request_, bytes_per_step, mode, expected",
    [
        ("auto", 256 * 11 * 8, "NUMBA", MAX_STEPS_PER_CALL),
        ("auto", 1024 * 11 * 8, "NUMBA", 64),
        ("auto", BLOCK_BYTES, "NUMBA", 1),
        ("auto", 256 * 11 * 8, "JAX", MAX_STEPS_PER_CALL_JAX),
        ("auto", 256 * 11 * 8, "FAST_COMPILE", 1),
        (32, 256 * 11 * 8, "FAST_COMPILE", 32),
    ],
    ids=["numba", "numba-1024", "numba-huge", "jax", "c", "asked"],
)
def test_steps_per_call_is_chosen_from_the_backend_and_the_batch_bytes(
    request_, bytes_per_step, mode, expected
):
    fed = FedSharedVariable(
        type=pt.TensorType("int8", shape=(None,)),
        value=np.zeros(bytes_per_step, "int8"),
        strict=False,
    )
    assert _choose_steps_per_call(request_, [fed], get_mode(mode)) == expected


def test_a_block_that_could_not_fit_in_memory_is_refused_before_it_is_read():
    # 100,000 batches of 1,000 float64: 800 MB; refused against a 64 MB limit.
    model = list_model(rows=1_000)
    with model, pytest.MonkeyPatch.context() as patch:
        patch.setattr("pymc.data_feed.memory.memory_limit", lambda: 64 * 2**20)
        with pytest.raises(ValueError, match=r"steps_per_call=100,000 would hold a block"):
            pm.fit(10, progressbar=False, steps_per_call=100_000)
