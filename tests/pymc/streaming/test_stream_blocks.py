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
"""A stream hands over blocks of batches: the batches it would deliver one at a time, uncopied."""

import threading

import numpy as np
import pytensor
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import pymc as pm

from pymc.streaming import get_stream
from pymc.streaming.batching import Batcher
from pymc.streaming.stream import StreamEndedWarning, StreamExhausted

N = 500
X = np.arange(2 * N, dtype=float).reshape(N, 2)
Y = np.arange(N, dtype=float)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def stream_of(source=(X, Y), **options):
    options.setdefault("batch_size", 20)
    options.setdefault("random_seed", 4)
    return get_stream(pm.Minibatch(*source, streaming=True, **options)[0])


def block_buffers(stream):
    return {buffer: pytensor.shared(buffer.get_value()[None]) for buffer in stream.buffers}


@settings(max_examples=30, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=6),
    shuffle_buffer=st.sampled_from([0, 64, 65_536]),
)
def test_a_batcher_block_is_its_batches(counts, shuffle_buffer):
    source = stream_of().source

    def batcher():
        return Batcher(
            source,
            batch_size=20,
            shuffle_buffer=shuffle_buffer,
            state={"seed": 1, "epoch": 0, "offset": 0},
        )

    by_block, by_batch = batcher(), batcher()
    for count in counts:
        block, states = by_block.next_block(count)
        batches = by_batch.next_batches(count)
        assert states == [state for _, state in batches]
        for i, (batch, _) in enumerate(batches):
            for part, expected in zip(block, batch):
                np.testing.assert_array_equal(part[i], expected)
        assert all(part.shape[:2] == (count, 20) for part in block)


@pytest.mark.parametrize("prefetch", [0, 16], ids=["main-thread", "reader-thread"])
@pytest.mark.parametrize("steps", [1, 7, 25])
def test_blocks_deliver_the_batches_of_before_step_in_order(prefetch, steps):
    one_by_one, by_block = stream_of(prefetch=prefetch), stream_of(prefetch=prefetch)
    one_by_one.start(restart=True, random_seed=None)
    by_block.expect_blocks(steps)
    by_block.start(restart=True, random_seed=None)
    blocks = block_buffers(by_block)
    try:
        for asked in [steps, steps, max(1, steps - 3), steps]:
            got = by_block.before_block(asked, blocks)
            assert got == asked
            values = [block.get_value(borrow=True) for block in blocks.values()]
            for j in range(got):
                one_by_one.before_step()
                for value, buffer in zip(values, one_by_one.buffers):
                    np.testing.assert_array_equal(value[j], buffer.get_value())
            assert by_block.get_state() == one_by_one.get_state()
            assert by_block.steps == one_by_one.steps
            # The buffers hold the block's last batch, as after that many steps.
            for buffer, expected in zip(by_block.buffers, one_by_one.buffers):
                np.testing.assert_array_equal(buffer.get_value(), expected.get_value())
    finally:
        by_block.stop()
        one_by_one.stop()
    assert not reader_threads()


def test_a_block_read_as_one_run_is_a_view_not_a_copy():
    stream = stream_of(prefetch=0)
    stream.expect_blocks(8)
    stream.start(restart=True, random_seed=None)
    blocks = block_buffers(stream)
    stream.before_block(8, blocks)
    block = next(iter(blocks.values())).get_value(borrow=True)
    assert block.shape == (8, 20, 2) and block.base is not None  # a reshape of the gather
    stream.stop()


def test_a_one_shot_source_ends_a_block_early_then_stops_the_fit():
    chunks = iter([(X[i : i + 50], Y[i : i + 50]) for i in range(0, N, 50)])
    stream = stream_of([chunks], total_size=N, prefetch=4)
    stream.expect_blocks(8)
    stream.start(restart=True, random_seed=None)
    blocks = block_buffers(stream)
    try:
        assert [stream.before_block(8, blocks) for _ in range(3)] == [8, 8, 8]
        assert stream.before_block(8, blocks) == 1  # 500 rows: 25 batches of 20
        with pytest.warns(StreamEndedWarning, match="after 25 batches"):
            with pytest.raises(StopIteration):
                stream.before_block(8, blocks)
        with pytest.raises(StreamExhausted):
            stream.next_batch()
    finally:
        stream.stop()
    assert not reader_threads()


class Unreadable(Exception):
    pass


@pytest.mark.parametrize("prefetch", [0, 4])
def test_a_source_error_comes_after_the_batches_before_it(prefetch):
    def chunks():
        for i in range(0, N, 100):
            if i == 300:
                raise Unreadable("rows 300-400")
            yield X[i : i + 100], Y[i : i + 100]

    stream = stream_of([chunks], total_size=N, prefetch=prefetch, shuffle_buffer=0)
    stream.expect_blocks(8)
    stream.start(restart=True, random_seed=None)
    blocks = block_buffers(stream)
    try:
        assert stream.before_block(8, blocks) == 8
        assert stream.before_block(8, blocks) == 7  # 300 rows: 15 batches of 20
        np.testing.assert_array_equal(next(iter(blocks.values())).get_value()[-1][-1], X[299])
        with pytest.raises(Unreadable, match="rows 300-400"):
            stream.before_block(8, blocks)
    finally:
        stream.stop()
    assert not reader_threads()


def test_a_fit_in_blocks_reads_every_row_once_per_epoch():
    stream_model = pm.Model()
    with stream_model:
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=20, streaming=True, random_seed=2)
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu + X_mb[:, 0] * 0, 1, observed=y_mb)
    stream = get_stream(X_mb)
    seen = []
    real_before_block = stream.before_block

    def record(steps, blocks):  # what the fit's blocks held, batch by batch
        got = real_before_block(steps, blocks)
        [y_block] = [block for var, block in blocks.items() if var is stream.buffers[1]]
        seen.extend(y_block.get_value()[:got].copy())
        return got

    stream.before_block = record
    with stream_model:
        pm.fit(50, progressbar=False, steps_per_call=16)
    epochs = np.concatenate(seen).reshape(2, N)  # 50 steps of 20 rows: two epochs
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), Y)
    assert stream.steps == 50 and not reader_threads()
