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
import threading

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

import pymc as pm

from pymc.data_feed import feeding_data
from pymc.streaming import get_stream

N = 500
Y = np.arange(N, dtype=float)


def stream_of(source=Y, **kwargs):
    kwargs.setdefault("batch_size", 20)
    return get_stream(pm.Minibatch(source, streaming=True, **kwargs))


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


@settings(max_examples=25, deadline=None)
@given(
    switches=st.lists(st.integers(0, 12), min_size=1, max_size=8),
    prefetch=st.integers(1, 8),
    one_shot=st.booleans(),
)
def test_starting_and_stopping_the_reader_never_loses_or_repeats_a_batch(
    switches, prefetch, one_shot
):
    def source():
        return iter([Y[i : i + 30] for i in range(0, N, 30)])

    def make(prefetch):
        obj = source() if one_shot else source
        return stream_of(obj, prefetch=prefetch, random_seed=3, total_size=N)

    expected = make(0)
    stream = make(prefetch)
    for reads in switches:
        stream.start_reading()
        for _ in range(reads):
            try:
                batch = stream.next_batch()[0]
            except pm.streaming.stream.StreamExhausted:
                with pytest.raises(pm.streaming.stream.StreamExhausted):
                    expected.next_batch()
                break
            np.testing.assert_array_equal(batch, expected.next_batch()[0])
        stream.stop_reading()
        assert not reader_threads()
    assert stream.get_state() == expected.get_state()


def test_next_batch_outside_a_fit_reads_synchronously():
    stream = stream_of(prefetch=8, random_seed=1)
    batches = [stream.next_batch()[0] for _ in range(N // 20)]
    assert not reader_threads()
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), Y)


def test_set_state_restores_the_position():
    stream = stream_of(random_seed=5)
    for _ in range(7):
        stream.next_batch()
    state = stream.get_state()
    assert state == {"seed": 5, "epoch": 0, "offset": 140}
    following = stream.next_batch()[0]
    stream.set_state(state)
    np.testing.assert_array_equal(stream.next_batch()[0], following)


@pytest.mark.parametrize(
    "state, match",
    [
        ({"epoch": 0}, "keys 'seed', 'epoch' and 'offset'"),
        ([1, 2, 3], "keys 'seed', 'epoch' and 'offset'"),
        ({"seed": 1, "epoch": -1, "offset": 0}, "non-negative integers"),
        ({"seed": 1, "epoch": 0, "offset": 1.5}, "non-negative integers"),
    ],
    ids=["missing-keys", "not-a-dict", "negative", "float"],
)
def test_bad_states_are_refused(state, match):
    with pytest.raises(ValueError, match=match):
        stream_of().set_state(state)


def test_a_one_shot_stream_cannot_go_back_but_can_stay():
    stream = stream_of(iter([Y]), total_size=N, shuffle_buffer=0)
    stream.next_batch()
    with pytest.raises(ValueError, match="one-shot iterator, which cannot go back"):
        stream.set_state({"seed": stream.seed, "epoch": 0, "offset": 0})
    stream.set_state(stream.get_state())
    np.testing.assert_array_equal(stream.next_batch()[0], Y[20:40])


def test_batch_size_of_all_rows_gives_the_full_data_logp():
    with pm.Model() as model:
        y_mb = pm.Minibatch(Y, batch_size=N, streaming=True, random_seed=2)
        pm.Normal("y", 250, 100, observed=y_mb)
    get_stream(y_mb).refresh()
    full = pm.logp(pm.Normal.dist(250, 100), Y).sum().eval()
    np.testing.assert_allclose(_fed_logp(model)({}), full, rtol=1e-12)


@settings(max_examples=20, deadline=None)
@given(
    chunk_rows=st.integers(1, 200),
    batch_size=st.sampled_from([d for d in range(1, N + 1) if N % d == 0]),
    seed=st.integers(0, 2**16),
)
def test_scaled_batch_logps_average_to_the_full_data_logp_over_an_epoch(
    chunk_rows, batch_size, seed
):
    chunks = [Y[i : i + chunk_rows] for i in range(0, N, chunk_rows)]
    with pm.Model() as model:
        y_mb = pm.Minibatch(chunks, batch_size=batch_size, streaming=True, random_seed=seed)
        pm.Normal("y", 200, 150, observed=y_mb)
    logp = _fed_logp(model)
    stream = get_stream(y_mb)
    scaled = []
    for _ in range(N // batch_size):
        stream.refresh()
        scaled.append(logp({}))
    full = pm.logp(pm.Normal.dist(200, 150), Y).sum().eval()
    np.testing.assert_allclose(np.mean(scaled), full, rtol=1e-10)


def test_get_stream_needs_exactly_one_stream():
    a = pm.Minibatch(Y, batch_size=10, streaming=True)
    b = pm.Minibatch(Y, batch_size=10, streaming=True)
    assert a.stream is get_stream(a) and get_stream(a * 2) is a.stream
    with pytest.raises(ValueError, match="uses 2 streams"):
        get_stream(a + b)
    with pytest.raises(ValueError, match="uses 0 streams"):
        get_stream(pm.math.constant(1.0))


def _fed_logp(model):
    """The model's logp on the batch in its buffers, which the test refreshes itself."""
    with feeding_data():
        return model.compile_logp()
