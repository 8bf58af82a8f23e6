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
import time

import pytest

from pymc.streaming.prefetch import Exhausted, Failed, Prefetcher


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("test-reader")]


def test_items_arrive_in_order_then_the_end():
    reader = Prefetcher(iter(range(5)), depth=2, name="test-reader")
    assert [reader.get() for _ in range(5)] == list(range(5))
    assert isinstance(reader.get(), Exhausted)
    reader.stop()
    assert not reader_threads()


def test_stop_returns_what_was_prepared_and_not_consumed():
    reader = Prefetcher(iter(range(100)), depth=3, name="test-reader")
    assert reader.get() == 0
    time.sleep(0.1)  # let it fill the queue
    leftover = reader.stop()
    assert not reader_threads()
    # Nothing lost: what the thread prepared comes back in order, and the iterator resumes after.
    assert leftover == list(range(1, 1 + len(leftover))) and len(leftover) >= 3


def test_errors_reach_the_consumer_with_their_traceback():
    def source():
        yield 1
        raise KeyError("row 7 is corrupt")

    reader = Prefetcher(source(), depth=2, name="test-reader")
    assert reader.get() == 1
    failed = reader.get()
    assert isinstance(failed, Failed) and isinstance(failed.error, KeyError)
    frames = []
    tb = failed.error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert "source" in frames  # the frame that raised, in the reader thread
    reader.stop()


def test_stop_is_prompt_while_the_queue_is_full():
    reader = Prefetcher(iter(range(10**9)), depth=1, name="test-reader")
    time.sleep(0.05)
    started = time.perf_counter()
    reader.stop()
    assert time.perf_counter() - started < 1.0
    assert not reader.running and not reader_threads()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="at least 1, got 0"):
        Prefetcher(iter([]), depth=0)


def test_a_stop_with_a_timeout_leaves_a_blocked_read_and_a_later_stop_collects_it():
    release = threading.Event()

    def source():
        yield 1
        release.wait(10)  # a read that blocks (a stalled network)
        yield 2

    reader = Prefetcher(source(), depth=4, name="test-reader")
    assert reader.get() == 1
    assert reader.stop(timeout=0.05) is None and reader.running  # not waited for
    release.set()
    assert reader.stop() == [2]  # what the read returned is not lost
    assert not reader.running and not reader_threads()


def test_a_prefetcher_started_later_is_stopped_even_if_never_started():
    reader = Prefetcher(iter(range(3)), depth=2, name="test-reader", start=False)
    assert reader.stop() == [] and not reader_threads()
