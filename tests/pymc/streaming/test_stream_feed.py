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
"""A stream is a data feed: ``pm.fit`` drives one built directly, as it drives any feed."""

import pickle
import threading

import numpy as np

import pymc as pm

from pymc.streaming.sources import as_source
from pymc.streaming.stream import Stream, get_stream, streams_in

N = 120
IDS = np.arange(N, dtype=float)
X = np.column_stack([IDS, -IDS])


def stream(**options) -> Stream:
    defaults = {
        "batch_size": 10,
        "shuffle_buffer": 40,
        "seed": 3,
        "prefetch": 2,
        "total_size": None,
        "check_finite": False,
        "name": "test",
    }
    return Stream(as_source(X, IDS), **{**defaults, **options})


def test_pm_fit_drives_a_stream_every_row_once_per_epoch():
    fed = stream()
    X_b, y_b = fed.buffers
    seen = []

    def record(approx, losses, i):
        seen.append((X_b.get_value().copy(), y_b.get_value().copy()))

    with pm.Model():
        beta = pm.Normal("beta", 0, 1, shape=2)
        obs = pm.Normal("y", X_b @ beta, 1, observed=y_b)
        pm.fit(2 * N // 10, progressbar=False, random_seed=1, callbacks=[record])
    assert obs.owner.inputs[1].eval() == N  # total_size, from the source's rows
    assert get_stream(y_b) is fed and streams_in([obs]) == [fed]
    assert fed.steps == len(seen) == 2 * N // 10
    ids = np.concatenate([y for _, y in seen])
    np.testing.assert_array_equal(np.concatenate([x[:, 0] for x, _ in seen]), ids)  # aligned
    for epoch in (ids[:N], ids[N:]):
        np.testing.assert_array_equal(np.sort(epoch), IDS)
    assert not [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def test_a_restored_position_continues_the_identical_batches():
    first = stream()
    for _ in range(7):
        first.next_batch()
    state = first.get_state()
    expected = [first.next_batch() for _ in range(5)]
    second = stream(seed=99)
    second.set_state(state)  # the position carries the seed of the shuffles
    for want in expected:
        for ours, theirs in zip(second.next_batch(), want):
            np.testing.assert_array_equal(ours, theirs)


def test_a_pickled_stream_comes_back_at_its_position():
    fed = stream()
    for _ in range(4):
        fed.next_batch()
    copy = pickle.loads(pickle.dumps(fed))
    assert copy.get_state() == fed.get_state()
    np.testing.assert_array_equal(copy.next_batch()[1], fed.next_batch()[1])
