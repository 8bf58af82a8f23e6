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
import itertools

import numpy as np
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from pymc.exceptions import SourceDataError
from pymc.streaming.batching import Batcher, BlockOrder
from pymc.streaming.sources import BlockSource, Source, as_source, to_chunk
from tests.streaming.epoch_checks import assert_every_row_once_per_epoch


class ListOfBlocks(BlockSource):
    """Blocks held in a list, read whole: the shape of a Parquet or Dask source."""

    def __init__(self, chunks):
        self.blocks = [to_chunk(chunk) for chunk in chunks]
        self.block_rows = tuple(len(block[0]) for block in self.blocks)
        self.specs = as_source(chunks).specs
        self.reads: list[int] = []

    def read_block(self, index):
        self.reads.append(index)
        return self.blocks[index]


def make_batcher(source, batch_size, shuffle_buffer=0, seed=0, **kwargs):
    state = {"seed": seed, "epoch": 0, "offset": 0}
    return Batcher(
        source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state, **kwargs
    )


def chunked(n_rows, cuts):
    """Row ids as an X of shape (n, 2) and a y, cut into chunks at ``cuts``."""
    ids = np.arange(n_rows)
    X = np.column_stack([ids, -ids]).astype(float)
    bounds = [0, *sorted(set(cuts)), n_rows]
    return [(X[a:b], ids[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def streams(draw):
    n_rows = draw(st.integers(1, 300))
    cuts = draw(st.lists(st.integers(1, max(1, n_rows - 1)), max_size=12))
    chunks = chunked(n_rows, cuts)
    kinds = ["array", "aligned-reads", "blocks", "split-blocks", "list", "factory", "zipped"]
    kind = draw(st.sampled_from(kinds))
    if kind in ("array", "aligned-reads"):
        X = np.concatenate([c[0] for c in chunks])
        source = as_source(X, X[:, 0].astype(int))
        if kind == "aligned-reads":  # an on-disk chunking, as HDF5 and Zarr have
            source.gathers_rows, source.read_alignment = False, draw(st.integers(1, 50))
    elif kind in ("blocks", "split-blocks"):
        source = ListOfBlocks(chunks)
        source.splits_blocks = kind == "split-blocks"
    elif kind == "list":
        source = as_source(chunks)
    elif kind == "factory":
        source = as_source(lambda: iter(chunks))
    else:  # two aligned sources, chunked differently
        other = chunked(n_rows, draw(st.lists(st.integers(1, max(1, n_rows - 1)), max_size=5)))
        source = as_source(lambda: (c[0] for c in chunks), lambda: (c[1] for c in other))
    batch_size = draw(st.integers(1, n_rows))
    shuffle_buffer = draw(st.sampled_from([0, 1, 7, 64, 100_000]))
    return source, n_rows, batch_size, shuffle_buffer, draw(st.integers(0, 2**32))


@settings(max_examples=150, deadline=None)
@given(streams())
def test_every_row_once_per_epoch_aligned_in_full_batches(case):
    source, n_rows, batch_size, shuffle_buffer, seed = case
    batcher = make_batcher(source, batch_size, shuffle_buffer, seed, expected_rows=n_rows)
    assert_every_row_once_per_epoch(batcher, n_rows, batch_size, epochs=3)


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(0, 40))
def test_restoring_a_state_continues_identically(case, stop_after):
    source, _, batch_size, shuffle_buffer, seed = case
    batcher = make_batcher(source, batch_size, shuffle_buffer, seed)
    state = {"seed": seed, "epoch": 0, "offset": 0}
    for _ in range(stop_after):
        _, state = next(batcher)
    rest = [next(batcher) for _ in range(10)]
    restored = Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)
    for (batch, after), (again, after_again) in zip(rest, (next(restored) for _ in range(10))):
        assert after == after_again
        for part, part_again in zip(batch, again):
            np.testing.assert_array_equal(part, part_again)


def test_without_shuffling_batches_follow_storage_order_across_epochs():
    source = as_source(chunked(10, [3, 4, 9]))
    batcher = make_batcher(source, 4)
    ids = [next(batcher)[0][1].tolist() for _ in range(5)]
    assert ids == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 1], [2, 3, 4, 5], [6, 7, 8, 9]]


def test_states_count_rows_within_epochs():
    batcher = make_batcher(as_source(np.arange(10)), 4, seed=7)
    assert [next(batcher)[1] for _ in range(3)] == [
        {"seed": 7, "epoch": 0, "offset": 4},
        {"seed": 7, "epoch": 0, "offset": 8},
        {"seed": 7, "epoch": 1, "offset": 2},
    ]


@pytest.mark.parametrize("kind", ["array", "memmap", "factory"])
def test_shuffling_is_seeded_and_mixes_sorted_data(kind, tmp_path):
    n = 20_000
    y = np.sort(np.random.default_rng(0).normal(size=n))  # stored sorted by the outcome
    if kind == "memmap":
        np.save(tmp_path / "y.npy", y)
        source = as_source(np.load(tmp_path / "y.npy", mmap_mode="r"))
    elif kind == "array":
        source = as_source(y)
    else:
        source = as_source(lambda: (y[i : i + 1000] for i in range(0, n, 1000)))

    def first_batches(seed):
        batcher = make_batcher(source, 500, shuffle_buffer=n, seed=seed)
        return [next(batcher)[0][0] for _ in range(4)]

    batches = first_batches(1)
    for batch, again in zip(batches, first_batches(1)):
        np.testing.assert_array_equal(batch, again)
    assert not np.array_equal(batches[0], first_batches(2)[0])
    # A batch of a full shuffle looks like the data, not like one end of the sorted order.
    for batch in batches:
        assert abs(batch.mean()) < 0.25 and 0.8 < batch.std() < 1.2


def test_random_access_block_order_mixes_beyond_one_window():
    n = 100_000
    batcher = make_batcher(as_source(np.arange(n)), 1000, shuffle_buffer=1600, seed=3)
    batch = next(batcher)[0][0]
    # 16 blocks of 100 rows from anywhere in the data, not the first 1,600 rows.
    assert len(np.unique(batch // 100)) == 16 and batch.max() > n // 2


def test_blocks_are_read_whole_in_a_random_order_each_epoch():
    source = ListOfBlocks(chunked(1000, range(100, 1000, 100)))
    batcher = make_batcher(source, 100, shuffle_buffer=250, seed=5)
    first_epoch = [next(batcher)[0][1] for _ in range(10)]
    assert sorted(source.reads) == list(range(10)) and source.reads != list(range(10))
    # A window holds three whole blocks (>= 250 rows), shuffled together.
    assert len(np.unique(np.concatenate(first_epoch[:3]) // 100)) == 3
    epoch_orders = [source.reads[:10]]
    for _ in range(10):
        next(batcher)
    epoch_orders.append(source.reads[10:20])
    assert epoch_orders[0] != epoch_orders[1]


def test_blocks_larger_than_the_buffer_are_read_in_consecutive_pieces():
    source = ListOfBlocks(chunked(1000, [600]))
    source.splits_blocks = True
    opened = []
    iter_block = source.iter_block
    source.iter_block = lambda i, rows: opened.append((i, rows)) or iter_block(i, rows)
    batcher = make_batcher(source, 50, shuffle_buffer=250, seed=2)
    epoch = [next(batcher)[0][1] for _ in range(20)]
    # One reader per block, each window a shuffled 250-row piece of consecutive rows.
    assert sorted(opened) == [(0, 250), (1, 250)]
    window = np.concatenate(epoch[:5])
    assert window.max() - window.min() < 250 and len(np.unique(window)) == 250
    np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.arange(1000))
    # A restore into the middle of a block skips to its piece.
    state = {"seed": 2, "epoch": 0, "offset": 300}
    again = Batcher(source, batch_size=50, shuffle_buffer=250, state=state)
    np.testing.assert_array_equal(next(again)[0][1], epoch[6])


def test_aligned_reads_start_on_chunk_boundaries():
    reads = []
    source = as_source(np.arange(10_000))
    source.gathers_rows, source.read_alignment = False, 300
    read = source.read
    source.read = lambda start, stop: reads.append((start, stop)) or read(start, stop)
    next(make_batcher(source, 10, shuffle_buffer=1600))
    assert reads and all(start % 300 == 0 and (stop - start) == 300 for start, stop in reads)


def test_a_block_that_changes_size_is_reported():
    source = ListOfBlocks(chunked(100, [50]))
    source.blocks[1] = tuple(part[:10] for part in source.blocks[1])
    batcher = make_batcher(source, 10, shuffle_buffer=0)
    with pytest.raises(SourceDataError, match=r"read 10 rows for block 1, where it had 50 when"):
        [next(batcher) for _ in range(10)]


def test_one_shot_source_stops_and_drops_the_partial_batch():
    batcher = make_batcher(as_source(iter(chunked(10, [3]))), 4)
    assert len([batch for batch, _ in batcher]) == 2


def test_epoch_row_count_must_match_total_size():
    batcher = make_batcher(as_source(lambda: iter(chunked(10, [5]))), 4, expected_rows=12)
    with pytest.raises(
        SourceDataError, match="yielded 10 rows in epoch 0, but the stream expects 12"
    ):
        for _ in range(4):
            next(batcher)


def test_epoch_smaller_than_a_batch_is_refused():
    batcher = make_batcher(as_source(lambda: iter(chunked(3, []))), 4)
    with pytest.raises(SourceDataError, match="has 3 rows, fewer than batch_size=4"):
        next(batcher)


@pytest.mark.parametrize("kind", ["array", "factory"])
def test_check_finite_reports_nan(kind):
    X = np.ones((50, 2))
    X[33, 1] = np.nan
    source = as_source(X) if kind == "array" else as_source(lambda: iter([X[:20], X[20:]]))
    unchecked = make_batcher(source, 50)
    assert np.isnan(next(unchecked)[0][0]).sum() == 1
    checked = make_batcher(source, 10, shuffle_buffer=64, check_finite=True)
    with pytest.raises(SourceDataError, match=r"Output 0 .* has 1 NaN or infinite value"):
        for _ in range(5):
            next(checked)


@settings(max_examples=60, deadline=None)
@given(count=st.integers(1, 1_500), seed=st.integers(0, 2**63), epoch=st.integers(0, 10**6))
def test_the_block_order_is_a_seeded_bijection_with_an_inverse(count, seed, epoch):
    order = BlockOrder(count, seed=seed, epoch=epoch)
    items = [order[i] for i in range(count)]
    assert sorted(items) == list(range(count))
    assert [order.position(item) for item in items] == list(range(count))
    again = BlockOrder(count, seed=seed, epoch=epoch)
    assert [again[i] for i in range(0, count, 7)] == items[::7]


class Huge(Source):
    """Random access to rows it never stores: a file that declares more than it holds."""

    random_access = True

    def __init__(self, rows, alignment):
        self.num_rows, self.read_alignment = rows, alignment
        self.specs = as_source(np.zeros(1, dtype=np.int64)).specs

    def chunks(self):
        raise AssertionError("read by blocks")

    def read(self, start, stop):
        return (np.arange(start, min(stop, self.num_rows)),)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1_000, 10**13),
    alignment=st.sampled_from([1, 7, 4_096]),
    shuffle_buffer=st.sampled_from([0, 100, 65_536]),
    batch_size=st.integers(1, 999),
    where=st.floats(0, 1),
    seed=st.integers(0, 2**32),
)
def test_a_restore_anywhere_in_a_huge_epoch_continues_as_the_epoch_does(
    rows, alignment, shuffle_buffer, batch_size, where, seed
):
    source = Huge(rows, alignment)
    batch_size = min(batch_size, rows // 2)
    offset = batch_size + int(where * (rows - 2 * batch_size))  # both batches in the epoch

    def restored(at):
        state = {"seed": seed, "epoch": 3, "offset": at}
        return Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)

    earlier = restored(offset - batch_size)
    next(earlier)
    (expected,), after = next(earlier)
    (batch,), after_again = next(restored(offset))
    np.testing.assert_array_equal(batch, expected)
    assert after == after_again
    assert len(np.unique(batch)) == batch_size  # rows of the epoch, none twice
