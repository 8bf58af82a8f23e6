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
"""Hostile input and faults of the stream core: declared sizes, bad data, Ctrl-C and threads."""

import _thread
import sys
import threading
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytensor
import pytest

import pymc as pm

from pymc.exceptions import SourceDataError
from pymc.streaming import get_stream
from pymc.streaming.batching import Batcher
from pymc.streaming.sources import OutputSpec, Source

N = 600
RNG = np.random.default_rng(3)
X = RNG.normal(size=(N, 2))
Y = X @ [1.0, -2.0] + RNG.normal(size=N)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def regression(source=(X, Y), **minibatch):
    minibatch.setdefault("batch_size", 50)
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(*source, streaming=True, **minibatch)
        beta = pm.Normal("beta", 0, 10, shape=2)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    return model, get_stream(X_mb)


class Declared(Source):
    """A random-access source that declares ``rows`` rows of zeros and counts its reads."""

    random_access = True

    def __init__(self, rows, read_alignment=1):
        self.num_rows = rows
        self.read_alignment = read_alignment
        self.specs = (OutputSpec(np.dtype(float), ()),)
        self.reads = []

    def chunks(self):
        raise AssertionError("a random-access source is read by blocks")

    def read(self, start, stop):
        self.reads.append((start, stop))
        return (np.arange(start, min(stop, self.num_rows), dtype=float),)

    def head(self, rows):
        return self.read(0, rows)


def peak_bytes(action):
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- declared sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [10**6, 10**12, 10**15], ids=["1e6", "1e12", "1e15"])
def test_memory_of_an_epoch_does_not_grow_with_the_rows_a_source_declares(rows):
    state = {"seed": 1, "epoch": 0, "offset": 0}
    batcher = Batcher(Declared(rows), batch_size=256, shuffle_buffer=65_536, state=state)
    # A window of 65,536 float64 rows (0.5 MB) and its permutation, whatever the rows.
    assert peak_bytes(lambda: next(batcher)) < 4 * 2**20


def test_a_position_deep_in_a_huge_epoch_is_restored_without_reading_what_comes_before():
    source = Declared(10**12, read_alignment=100)
    state = {"seed": 4, "epoch": 2, "offset": 10**12 - 700}
    batcher = Batcher(source, batch_size=256, shuffle_buffer=1_600, state=state)
    _, after = next(batcher)
    assert after == {"seed": 4, "epoch": 2, "offset": 10**12 - 700 + 256}
    assert len(source.reads) <= 16  # one window's blocks, aligned to the chunks
    assert all(start % 100 == 0 for start, _ in source.reads)


# --- bad data -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first, later, match",
    [
        (
            np.array([1, 2], np.int8),
            np.array([1000, 3]),
            r"1 value\(s\) of dtype int64 do not fit .* int8.*1000 would become -24",
        ),
        (
            np.array([1.0], np.float16),
            np.array([1e6, 3.0]),
            r"of dtype float64 do not fit .* float16.*1000000.0 would become inf",
        ),
        (np.array([1.0], np.float32), np.array([2**40 + 1]), r"int64 do not fit .* float32"),
    ],
    ids=["int8", "float16", "int-to-float32"],
)
def test_a_later_chunk_whose_values_do_not_fit_the_first_chunks_dtype_is_refused(
    first, later, match
):
    rows = len(first) + len(later)
    stream = get_stream(
        pm.Minibatch(lambda: iter([first, later]), batch_size=1, streaming=True, total_size=rows)
    )
    with pytest.raises(SourceDataError, match=match):
        for _ in range(rows):
            stream.next_batch()


def test_later_chunks_of_other_dtypes_that_fit_are_cast():
    chunks = [np.array([1, 2], np.int8), np.array([100, -3]), np.array([0.5], np.float32)]
    stream = get_stream(
        pm.Minibatch(lambda: iter(chunks[:2]), batch_size=4, streaming=True, total_size=4)
    )
    batch = stream.next_batch()[0]
    assert batch.dtype == np.int8 and sorted(batch) == [-3, 1, 2, 100]
    floats = [np.array([0.1], np.float32), np.array([0.1, 1e-3])]  # rounding is not refused
    source = pm.streaming.as_source(floats)
    assert [chunk[0].dtype for chunk in source.chunks()] == [np.float32, np.float32]


@pytest.mark.parametrize(
    "data",
    [
        pd.Series(pd.array([1, None, 3, 4], dtype="Int64")),
        pd.DataFrame({"a": pd.array([1, None, 3, 4], dtype="Int64"), "b": [1.0, 2.0, 3.0, 4.0]}),
        pd.DataFrame({"a": pd.array([1.5, 2.0, None, 4.0], dtype="Float64")}),
    ],
    ids=["series-Int64", "frame-Int64", "frame-Float64"],
)
def test_missing_values_of_nullable_pandas_columns_are_refused(data):
    with pytest.raises(SourceDataError, match=r"has 1 missing value\(s\) \(pd\.NA\).*dropna"):
        pm.Minibatch(data, batch_size=2, streaming=True)
    with pytest.raises(SourceDataError, match=r"missing value\(s\) \(pd\.NA\)"):
        pm.Minibatch([data], batch_size=2, streaming=True)


def test_nullable_pandas_columns_without_missing_values_stream_as_numbers():
    frame = pd.DataFrame({"a": pd.array([1, 2, 3], dtype="Int64"), "b": [0.5, 1.5, 2.5]})
    batch = get_stream(pm.Minibatch(frame, batch_size=3, streaming=True)).next_batch()[0]
    assert batch.dtype == np.float64 and sorted(batch[:, 0]) == [1, 2, 3]


@pytest.mark.parametrize("kind", ["array", "memmap", "chunks"])
def test_big_endian_data_streams_in_the_machines_byte_order(kind, tmp_path):
    data = np.arange(100.0).astype(">f8")
    if kind == "memmap":
        np.save(tmp_path / "be.npy", data)
        data = np.load(tmp_path / "be.npy", mmap_mode="r")
    source = [data[:60], data[60:]] if kind == "chunks" else data
    x_mb = pm.Minibatch(source, batch_size=100, streaming=True)
    assert x_mb.dtype == "float64"
    stream = get_stream(x_mb)
    batch = stream.next_batch()[0]
    assert batch.dtype.isnative and sorted(batch) == list(range(100))
    stream.refresh()  # the next epoch's batch, into the model
    np.testing.assert_array_equal(np.sort(x_mb.eval()), np.arange(100.0))


class Counted(Source):
    """A source that reports its rows with whatever type the test gives."""

    def __init__(self, num_rows):
        self.num_rows = num_rows
        self.specs = (OutputSpec(np.dtype(float), ()),)

    def chunks(self):
        yield (np.arange(500.0),)

    def head(self, rows):
        return (np.arange(float(rows)),)


def test_a_numpy_integer_row_count_is_taken_as_rows():
    with pm.Model():
        y_mb = pm.Minibatch(Counted(np.int64(500)), batch_size=10, streaming=True)
        obs = pm.Normal("y", 0, 1, observed=y_mb)
    assert obs.owner.inputs[1].eval() == 500  # total_size, inferred


@pytest.mark.parametrize(
    "rows, match",
    [
        (-5, r"num_rows=-5, which is not a number of rows"),
        (2.5, r"num_rows=2.5, which is not a number of rows"),
        (0, r"has no rows"),
    ],
    ids=["negative", "float", "zero"],
)
def test_a_bad_row_count_of_a_source_is_refused(rows, match):
    with pytest.raises(SourceDataError, match=match):
        pm.Minibatch(Counted(rows), batch_size=10, streaming=True)


def test_a_prefetch_that_cannot_fit_in_memory_is_refused():
    def endless():
        while True:
            yield np.zeros((100, 10))

    with pytest.raises(ValueError, match=r"prefetch=1,000,000,000 would hold .* half of this"):
        pm.Minibatch(endless, batch_size=100, streaming=True, total_size=10**6, prefetch=10**9)
    with pytest.raises(ValueError, match=r"shuffle_buffer=10,000,000,000,000 would hold"):
        pm.Minibatch(
            endless, batch_size=100, streaming=True, total_size=10**15, shuffle_buffer=10**13
        )


def test_nan_and_infinite_values_are_counted_exactly_with_their_rows():
    data = np.ones((100, 2))
    data[np.arange(10) * 7, 0] = np.nan
    data[99, 1] = np.inf
    stream = get_stream(pm.Minibatch(data, batch_size=20, streaming=True, check_finite=True))
    with pytest.raises(
        SourceDataError,
        match=r"Output 0 .* has 11 NaN or infinite value\(s\) in 11 of the 100 rows of a shuffle "
        r"window read in epoch 0 \(rows 0, 7, 14, 21, 28, \.\.\.\)",
    ):
        for _ in range(10):
            stream.next_batch()


def test_a_nan_loss_from_nan_data_points_to_check_finite():
    data = X.copy()
    data[:, 0] = np.nan
    model, _ = regression((data, Y), random_seed=1)
    with (
        model,
        pytest.raises(FloatingPointError, match=r"NaN or infinite values.*check_finite=True"),
    ):
        pm.fit(50, progressbar=False)
    assert not reader_threads()


def test_a_one_shot_source_with_fewer_rows_than_total_size_says_so_at_its_end():
    chunks = ((X[i : i + 100], Y[i : i + 100]) for i in range(0, N, 100))
    model, _ = regression([chunks], total_size=1_000, shuffle_buffer=0)
    steps = []
    with (
        model,
        pytest.raises(
            SourceDataError, match=r"one-shot iterator that ended after 600 rows.*total_size=600"
        ),
    ):
        pm.fit(1_000, progressbar=False, callbacks=[lambda *_: steps.append(1)])
    assert len(steps) == 12  # every batch of the data was used before the error
    assert not reader_threads()


def test_a_one_shot_source_with_more_rows_than_total_size_is_refused_when_it_passes_it():
    chunks = ((X[i % N : i % N + 100], Y[i % N : i % N + 100]) for i in range(0, 2 * N, 100))
    model, _ = regression([chunks], total_size=N, shuffle_buffer=0, prefetch=0)
    with model, pytest.raises(SourceDataError, match=r"yielded more than 600 rows in epoch 0"):
        pm.fit(1_000, progressbar=False)


def test_streams_read_together_in_one_likelihood_are_refused():
    # As PyMC's radon notebook writes it: one pm.Minibatch call per variable.
    county = np.arange(N) % 7
    with pm.Model():
        county_mb = pm.Minibatch(county, batch_size=50, streaming=True)
        x_mb = pm.Minibatch(X[:, 0], batch_size=50, streaming=True)
        y_mb = pm.Minibatch(Y, batch_size=50, streaming=True)
        a = pm.Normal("a", 0, 1, shape=7)
        b = pm.Normal("b", 0, 1)
        with pytest.raises(SourceDataError, match=r"reads 3 separate data feeds"):
            pm.Normal("y", a[county_mb] + b * x_mb, 1, observed=y_mb)


# --- Ctrl-C and threads --------------------------------------------------------------------------


class InterruptedStart:
    """Replaces the reader's Thread class: Ctrl-C arrives while a reader thread starts."""

    def __init__(self, monkeypatch, *, before):
        import pymc.streaming.prefetch as prefetch

        original = prefetch.threading.Thread
        self.interrupted = 0
        outer = self

        class Thread(original):
            def start(self):
                if not self.name.startswith("pymc-stream"):
                    return super().start()
                outer.interrupted += 1
                if before:
                    raise KeyboardInterrupt
                super().start()
                raise KeyboardInterrupt

        monkeypatch.setattr(prefetch.threading, "Thread", Thread)


@pytest.mark.parametrize("before", [False, True], ids=["after-launch", "before-launch"])
def test_ctrl_c_while_the_reader_starts_returns_and_leaves_no_thread(monkeypatch, before):
    model, stream = regression(random_seed=2, prefetch=4)
    interrupt = InterruptedStart(monkeypatch, before=before)
    with model:
        for _ in range(2):  # pressed at each start: no reader thread left, however often
            approx = pm.fit(100, progressbar=False)
            assert isinstance(approx, pm.MeanField)
    assert interrupt.interrupted == 2 and stream.steps == 0
    assert not reader_threads()
    monkeypatch.undo()
    with model:  # the stream still works, from its start
        pm.fit(5, progressbar=False)
    assert stream.steps == 5 and not reader_threads()


class Blocking(Source):
    """A source whose reads block until released (a stalled network read), from ``block_at``."""

    def __init__(self, block_at=0):
        self.num_rows = N
        self.specs = (OutputSpec(np.dtype(float), (2,)), OutputSpec(np.dtype(float), ()))
        self.block_at = block_at
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.waited_out = False
        self.first_pass = True

    def chunks(self):
        first_pass, self.first_pass = self.first_pass, False
        for i in range(0, N, 100):
            if i == self.block_at and first_pass:
                self.blocked.set()
                # Only a fit that waits for the read reaches the end of this wait.
                # Long enough for a compilation on a busy machine to finish first.
                self.waited_out = not self.release.wait(timeout=120)
            yield X[i : i + 100], Y[i : i + 100]

    def head(self, rows):
        return X[:rows], Y[:rows]


def waiting_for_the_reader(thread, timeout):
    """Wait until ``thread`` waits in the prefetcher for a block the reader has not delivered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(thread.ident)
        while frame is not None:
            if frame.f_code.co_name == "get" and frame.f_code.co_filename.endswith("prefetch.py"):
                return
            frame = frame.f_back
        time.sleep(0.01)


def finish(source):
    """Let the blocked read return; its thread then ends by itself."""
    returned_before_the_read = not source.waited_out and not source.release.is_set()
    source.release.set()
    for thread in reader_threads():
        thread.join(timeout=10)
    return returned_before_the_read


def assert_nothing_lost(stream):
    """The stream continues right after the last batch that a step used."""
    delivered = stream.get_state()["offset"]
    assert delivered == stream.steps * 50
    np.testing.assert_array_equal(stream.next_batch()[1], Y[delivered : delivered + 50])


# PyTensor's default mode: an earlier test of PyMC's suite leaves a C-backend Mode object in
# pytensor.config.mode, under which this scenario is another one (the step holds the GIL).
@pytensor.config.change_flags(mode="NUMBA")
def test_ctrl_c_while_the_source_is_blocked_in_a_read_returns_promptly():
    source = Blocking(block_at=0)  # the fit's first read blocks: the fit waits for a batch
    model, stream = regression([source], shuffle_buffer=0, prefetch=2)

    def press():  # Ctrl-C once the reader thread is stuck, while the fit waits for it
        source.blocked.wait(30)
        # Not while the fit still compiles its step (long on a busy machine): once it waits.
        waiting_for_the_reader(threading.main_thread(), timeout=120)
        _thread.interrupt_main()

    presser = threading.Thread(target=press, name="test-ctrl-c")
    presser.start()
    with model:
        approx = pm.fit(1_000, progressbar=False)
    presser.join()
    assert finish(source)  # pm.fit did not wait for the blocked read
    assert isinstance(approx, pm.MeanField) and stream.steps == 0
    assert not reader_threads()
    assert_nothing_lost(stream)


def test_a_second_ctrl_c_while_the_fit_stops_its_reader_returns_too(monkeypatch):
    import pymc.streaming.prefetch as prefetch

    source = Blocking(block_at=200)
    model, stream = regression([source], shuffle_buffer=0, prefetch=2)
    stop = prefetch.Prefetcher.stop
    pressed = []

    def pressed_again(self, *args, **kwargs):
        if not pressed:  # Ctrl-C again while pm.fit waits for the reader to stop
            pressed.append(1)
            self._stopping.set()
            raise KeyboardInterrupt
        return stop(self, *args, **kwargs)

    monkeypatch.setattr(prefetch.Prefetcher, "stop", pressed_again)

    def first_press(approx, loss, i):
        if i == 3:
            source.blocked.wait(30)
            raise KeyboardInterrupt

    # One step per call: the callback of step 3 runs before the read of row 200 (a block of
    # many steps would read it first, and callbacks run after a block's reads).
    with model:
        approx = pm.fit(1_000, progressbar=False, callbacks=[first_press], steps_per_call=1)
    assert finish(source) and pressed
    assert isinstance(approx, pm.MeanField) and stream.steps == 3
    assert not reader_threads()
    assert_nothing_lost(stream)


def test_ctrl_c_in_a_read_in_the_main_thread_is_not_delayed():
    interrupted = []

    def chunks():
        for i in range(0, N, 100):
            if i == 300 and not interrupted:
                interrupted.append(i)
                raise KeyboardInterrupt  # Ctrl-C while the source reads
            yield X[i : i + 100], Y[i : i + 100]

    model, stream = regression([chunks], total_size=N, shuffle_buffer=0, prefetch=0)
    with model:
        pm.fit(1_000, progressbar=False)
    # Reading 16 batches at a time, the batches before the Ctrl-C were not handed out first.
    assert interrupted and stream.steps == 0
    assert_nothing_lost(stream)


class Closing(Source):
    """An in-memory source that counts how often it is closed."""

    random_access = True

    def __init__(self):
        self.num_rows, self.specs, self.closed = N, (OutputSpec(np.dtype(float), ()),), 0

    def chunks(self):
        yield self.read(0, N)

    def read(self, start, stop):
        return (Y[start:stop],)

    def head(self, rows):
        return self.read(0, rows)

    def close(self):
        self.closed += 1


@pytest.mark.parametrize("prefetch", [0, 4])
def test_a_fit_closes_what_its_stream_opened_when_it_ends(prefetch):
    source = Closing()
    with pm.Model():
        y_mb = pm.Minibatch(source, batch_size=50, streaming=True, prefetch=prefetch)
        pm.Normal("y", pm.Normal("mu", 0, 10), 1, observed=y_mb)
        pm.fit(20, progressbar=False)
        assert source.closed == 1 and not reader_threads()
        stream = get_stream(y_mb)
        state = stream.get_state()
        inference = pm.ADVI()
        inference.fit(3, progressbar=False)
        inference.refine(4, progressbar=False)  # reads again after the close
    assert source.closed == 3 and stream.steps == 27 and state["offset"] == 20 * 50 % N


def test_sources_are_context_managers():
    with Closing() as source:
        assert source.read(0, 2)[0].shape == (2,)
    assert source.closed == 1
