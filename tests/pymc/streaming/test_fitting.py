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
import re
import sys
import threading
import traceback

import numpy as np
import pytensor
import pytest

import pymc as pm

from pymc.streaming import get_stream
from pymc.streaming.stream import StreamEndedWarning
from pymc.variational.callbacks import CheckParametersConvergence

N = 600
RNG = np.random.default_rng(1)
X = RNG.normal(size=(N, 2))
Y = X @ [1.0, -2.0] + RNG.normal(size=N)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def regression(source=(X, Y), **minibatch):
    minibatch.setdefault("batch_size", 50)
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(*source, streaming=True, **minibatch)
        beta = pm.Normal("beta", 0, 10, shape=2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb)
    return model, get_stream(X_mb)


class BatchLog:
    """A callback recording the rows each step saw (the buffer after the step).

    In blocks of many steps per call (``works_on_blocks``), it is the block's last batch.
    """

    def __init__(self, stream, works_on_blocks=False):
        self.stream = stream
        self.batches = []
        self.works_on_blocks = works_on_blocks

    def __call__(self, approx, loss, i):
        self.batches.append(self.stream.buffers[1].get_value().copy())


def _hand_written_and_streamed(**fit_options):
    chunks = [(X[i : i + 37], Y[i : i + 37]) for i in range(0, N, 37)]
    batch_size, steps = 50, 200
    model, _ = regression([chunks], batch_size=batch_size, shuffle_buffer=0)
    with model:
        streamed = pm.fit(steps, random_seed=3, progressbar=False, **fit_options)

    order = np.arange(steps * batch_size) % N  # storage order, continuing into the next epoch
    with pm.Model():
        X_data = pm.Data("X", X[order[:batch_size]])
        y_data = pm.Data("y_data", Y[order[:batch_size]])
        beta = pm.Normal("beta", 0, 10, shape=2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_data @ beta, sigma, observed=y_data, total_size=N)

        def next_batch(approx, loss, i):
            rows = order[i * batch_size : (i + 1) * batch_size]
            X_data.set_value(X[rows])
            y_data.set_value(Y[rows])

        by_hand = pm.fit(steps, random_seed=3, progressbar=False, callbacks=[next_batch])
    return streamed, by_hand


def test_streaming_advi_equals_a_hand_written_set_value_loop_exactly():
    # One step per call, streamed or by hand: the same compiled step on the same batches.
    streamed, by_hand = _hand_written_and_streamed(steps_per_call=1)
    for ours, theirs in zip(streamed.params, by_hand.params):
        np.testing.assert_array_equal(ours.get_value(), theirs.get_value())
    np.testing.assert_array_equal(streamed.hist, by_hand.hist)


def test_streaming_advi_in_blocks_equals_the_hand_written_loop_up_to_rounding():
    # By default the 200 steps run as one compiled loop, which may order floating-point
    # operations differently from one step per call: equal to the last few digits.
    streamed, by_hand = _hand_written_and_streamed()
    for ours, theirs in zip(streamed.params, by_hand.params):
        np.testing.assert_allclose(ours.get_value(), theirs.get_value(), rtol=1e-9)
    np.testing.assert_allclose(streamed.hist, by_hand.hist, rtol=1e-9)


@pytest.mark.parametrize("method", ["advi", "fullrank_advi", "svgd", "asvgd"])
def test_every_method_sees_a_fresh_batch_each_step(method):
    model, stream = regression(batch_size=40, random_seed=2)
    log = BatchLog(stream)
    with model:
        pm.fit(30, method=method, progressbar=False, callbacks=[log], random_seed=1)
    assert len(log.batches) == 30 and stream.steps == 30
    seen = np.concatenate(log.batches[:15])  # one epoch: 600 rows
    np.testing.assert_array_equal(np.sort(seen), np.sort(Y))
    assert not reader_threads()


@pytest.mark.parametrize("backend", ["c", "numba", "jax"])
def test_backends(backend):
    if backend == "jax":
        pytest.importorskip("jax")
    model, stream = regression(batch_size=60, random_seed=5)
    with model:
        approx = pm.fit(50, backend=backend, progressbar=False, random_seed=1)
    assert stream.steps == 50 and np.isfinite(approx.mean.eval()).all()


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA", "JAX"])
def test_every_backend_reads_the_swapped_buffer(mode):
    if mode == "JAX":
        pytest.importorskip("jax")
    x_mb = pm.Minibatch(np.arange(100.0), batch_size=10, streaming=True, shuffle_buffer=0)
    total = pytensor.function([], x_mb.sum(), mode=mode)
    stream = get_stream(x_mb)
    sums = []
    for _ in range(3):
        stream.refresh()
        sums.append(float(total()))
    assert sums == [45.0, 145.0, 245.0]


def test_refine_continues_the_stream_and_fit_starts_it_over():
    model, stream = regression(random_seed=8)
    with model:
        inference = pm.ADVI(random_seed=1)
        log = BatchLog(stream)
        inference.fit(20, progressbar=False, callbacks=[log])
        after_fit = stream.get_state()
        inference.refine(10, progressbar=False)
        assert stream.steps == 30 and len(log.batches) == 30
        assert stream.get_state()["offset"] != after_fit["offset"] or stream.epoch > 0
        first = log.batches[0]
        inference.fit(1, progressbar=False, callbacks=[log])
    np.testing.assert_array_equal(log.batches[-1], first)


def test_callbacks_such_as_convergence_checks_still_stop_the_fit():
    model, stream = regression(random_seed=1)
    with model:
        pm.fit(
            100_000,
            progressbar=False,
            random_seed=1,
            callbacks=[CheckParametersConvergence(every=50, tolerance=0.5)],
        )
    assert 0 < stream.steps < 100_000
    assert not reader_threads()


@pytest.mark.parametrize("prefetch", [0, 16])
def test_same_seed_same_batches_and_parameters(prefetch):
    def fit():
        model, _ = regression(prefetch=prefetch)  # the stream's seed comes from pm.fit's
        with model:
            return pm.fit(200, random_seed=11, progressbar=False).mean.eval()

    first = fit()
    np.testing.assert_array_equal(first, fit())
    model, _ = regression(prefetch=prefetch)
    with model:
        other = pm.fit(200, random_seed=12, progressbar=False).mean.eval()
    assert not np.array_equal(first, other)


def test_prefetching_does_not_change_the_fit():
    fits = []
    for prefetch in (0, 1, 16):
        model, _ = regression(prefetch=prefetch, random_seed=3)
        with model:
            fits.append(pm.fit(150, random_seed=2, progressbar=False).mean.eval())
    np.testing.assert_array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(fits[0], fits[2])


@pytest.mark.parametrize("prefetch", [0, 16])
@pytest.mark.parametrize(
    "stop_at, steps_per_call", [(1, 1), (13, 1), (29, 1), (12, 4), (24, 8)], ids=str
)
def test_restored_state_continues_the_identical_batch_sequence(stop_at, steps_per_call, prefetch):
    # In a callback, the stream's position is that of the parameters: after the block. At the
    # end of a block (every step when one runs per call) it is the step's.
    model, stream = regression(random_seed=21, prefetch=prefetch)
    log, saved = BatchLog(stream, works_on_blocks=True), {}

    def remember(approx, loss, i):
        if i == stop_at:
            saved["state"] = stream.get_state()

    remember.works_on_blocks = True  # it saves at stop_at, the end of a block

    with model:
        pm.fit(
            stop_at + 25,
            progressbar=False,
            callbacks=[log, remember],
            steps_per_call=steps_per_call,
        )
    expected = log.batches[stop_at:]

    # A new session: rebuild the model, restore the position, and fit on.
    model, stream = regression(random_seed=21, prefetch=prefetch)
    stream.set_state(saved["state"])
    log = BatchLog(stream, works_on_blocks=True)
    with model:
        pm.fit(25, progressbar=False, callbacks=[log], steps_per_call=steps_per_call)
    assert len(log.batches) == len(expected) == 25
    for batch, again in zip(expected, log.batches):
        np.testing.assert_array_equal(batch, again)


def test_one_shot_source_ends_the_fit_with_a_warning():
    chunks = ((X[i : i + 70], Y[i : i + 70]) for i in range(0, N, 70))
    model, stream = regression([chunks], batch_size=50, total_size=N)
    with model, pytest.warns(StreamEndedWarning, match="one-shot source after 12 batches") as seen:
        approx = pm.fit(1000, progressbar=False)
    assert seen[0].filename == __file__  # points at the caller of pm.fit
    assert stream.steps == N // 50 and len(approx.hist) == N // 50
    assert not reader_threads()


class CorruptRow(Exception):
    pass


@pytest.mark.parametrize("prefetch", [0, 4])
def test_source_errors_surface_with_their_type_and_traceback(prefetch):
    def read_chunks():
        for i in range(0, N, 100):
            if i == 300:
                raise CorruptRow(f"row {i} is corrupt")
            yield X[i : i + 100], Y[i : i + 100]

    model, _ = regression([read_chunks], batch_size=50, total_size=N, shuffle_buffer=0)
    steps = []
    with model, pytest.raises(CorruptRow, match="row 300 is corrupt") as raised:
        pm.fit(100, progressbar=False, callbacks=[lambda approx, loss, i: steps.append(i)])
    assert len(steps) == 6  # the 300 rows read before the error, no batch lost or invented
    frames = [frame.name for frame in traceback.extract_tb(raised.value.__traceback__)]
    assert "read_chunks" in frames
    assert not reader_threads()


@pytest.mark.parametrize("steps_per_call, steps_run", [(1, 6), (4, 8)], ids=["one", "blocks"])
def test_keyboard_interrupt_returns_the_approximation(steps_per_call, steps_run):
    # Callbacks run after their block: a Ctrl-C in step 7's leaves the block's 8 steps done,
    # with their losses. One step per call, the loss of the step in progress is dropped.
    model, stream = regression(random_seed=1, prefetch=8)

    def interrupt(approx, loss, i):
        if i == 7:
            raise KeyboardInterrupt

    interrupt.works_on_blocks = True

    with model:
        approx = pm.fit(
            1000, progressbar=False, callbacks=[interrupt], steps_per_call=steps_per_call
        )
    assert isinstance(approx, pm.MeanField) and stream.steps == max(steps_run, 7)
    assert len(approx.hist) == steps_run
    assert not reader_threads()


def test_progress_bar_shows_epoch_and_rows_per_second():
    model, stream = regression(batch_size=100, random_seed=1)
    seen = []

    def look(approx, loss, i):
        seen.extend(column.render(None).plain for column in stream.progress_columns())

    with model:
        pm.fit(20, callbacks=[look], progressbar=True)
    assert re.fullmatch(r"epoch 4 · [\d,]+ rows/s", seen[-1])  # 2,000 rows: into the 4th pass


def test_progress_bar_prints_epoch_and_rows_per_second(capsys):
    model, _ = regression(batch_size=100, random_seed=1)
    with model:
        pm.fit(30, progressbar=True)
    assert re.search(r"epoch 5 · [\d,]+ rows/s", capsys.readouterr().out)


def test_a_fit_leaves_the_switch_interval_alone():
    before = sys.getswitchinterval()
    seen = []
    model, _ = regression(prefetch=8, random_seed=1)
    with model:
        pm.fit(5, progressbar=False, callbacks=[lambda *_: seen.append(sys.getswitchinterval())])
    assert seen == [before] * 5
    assert sys.getswitchinterval() == before
