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
"""Batching: fixed-size batches over epochs, shuffled in bounded memory, at a restorable position."""

from collections.abc import Callable, Generator, Iterator, Sequence
from typing import cast

import numpy as np

from pymc.exceptions import SourceDataError
from pymc.streaming.sources import BlockSource, Chunk, Source

__all__ = ["DEFAULT_SHUFFLE_BUFFER", "Batcher", "BatcherState", "BlockOrder"]

DEFAULT_SHUFFLE_BUFFER = 65_536
"""Rows shuffled together by default: 5 MB for 10 float64 features; the whole of a 50k-row set."""

BLOCKS_PER_WINDOW = 16
"""A shuffle window of a random-access source gathers this many blocks from random places."""

SEQUENTIAL_READ_ROWS = 65_536
"""Rows per read of a random-access source when shuffling is off."""

CHECK_ROWS = 8_192
"""Rows of data in memory gathered at a time to check a window for NaN (``check_finite``)."""

BatcherState = dict[str, int]
"""``{"seed": int, "epoch": int, "offset": int}``: the seed of the shuffles, the epoch, and how
many rows of that epoch's (shuffled) order have been consumed."""


FEISTEL_ROUNDS = 6
"""Rounds of the Feistel network behind the block order of random-access sources."""

_MASK64 = (1 << 64) - 1


def _window_rng(seed: int, epoch: int, window: int) -> np.random.Generator:
    # Every window has its own generator, so a restored position needs no replay of earlier draws.
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(epoch, window)))


def _mix64(value: int) -> int:
    """A 64-bit integer hash (the finaliser of splitmix64): the round function of the network."""
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


class BlockOrder:
    """A seeded random permutation of ``range(count)``, computed one position at a time.

    A balanced Feistel network over the smallest even number of bits that holds ``count`` is a
    bijection of that power-of-two range; cycle walking (applying it again while the result is
    out of range) turns it into a bijection of ``range(count)`` [1]_. Memory is constant and
    each position costs a few microseconds, however many blocks a file declares, where
    ``rng.permutation(count)`` would hold 16 bytes per block. The walk takes fewer than four
    steps on average, since the range is less than four times ``count``.

    Parameters
    ----------
    count : int
        Items to permute (blocks of an epoch).
    seed, epoch : int
        Seed the round keys through ``np.random.SeedSequence(seed, spawn_key=(epoch, 0))``:
        each epoch has its own order, the same for the same seed.

    References
    ----------
    .. [1] Black, J. and Rogaway, P. (2002). "Ciphers with Arbitrary Finite Domains".
       CT-RSA 2002, LNCS 2271, pp. 114-130.

    Examples
    --------
    >>> order = BlockOrder(10, seed=1, epoch=0)
    >>> sorted(order[i] for i in range(10)) == list(range(10))
    True
    >>> all(order.position(order[i]) == i for i in range(10))
    True
    """

    def __init__(self, count: int, *, seed: int, epoch: int):
        self.count = int(count)
        bits = max(2, (self.count - 1).bit_length())
        self._half = (bits + 1) // 2
        self._mask = (1 << self._half) - 1
        sequence = np.random.SeedSequence(seed, spawn_key=(epoch, 0))
        self._keys = [int(key) for key in sequence.generate_state(FEISTEL_ROUNDS, np.uint64)]

    def _forward(self, value: int) -> int:
        left, right = value >> self._half, value & self._mask
        for key in self._keys:
            left, right = right, left ^ (_mix64(right ^ key) & self._mask)
        return (left << self._half) | right

    def _backward(self, value: int) -> int:
        left, right = value >> self._half, value & self._mask
        for key in reversed(self._keys):
            left, right = right ^ (_mix64(left ^ key) & self._mask), left
        return (left << self._half) | right

    def __getitem__(self, position: int) -> int:
        """The item at ``position`` of the order."""
        item = self._forward(position)
        while item >= self.count:
            item = self._forward(item)
        return item

    def position(self, item: int) -> int:
        """Where ``item`` comes in the order: the inverse of indexing."""
        position = self._backward(item)
        while position >= self.count:
            position = self._backward(position)
        return position


class _StorageOrder:
    """The identity order, for reads without shuffling."""

    def __getitem__(self, position: int) -> int:
        return position

    def position(self, item: int) -> int:
        return item


def _concat(pieces: list[Chunk]) -> Chunk:
    if len(pieces) == 1:
        return pieces[0]
    return tuple(np.concatenate(parts) for parts in zip(*pieces))


def _round_up(rows: int, multiple: int) -> int:
    return -(-rows // multiple) * multiple


def _numbered(windows: Iterator[tuple[int, Callable[[], Chunk]]]):
    """``(index, rows before, rows, read)`` for windows given as ``(rows, read)``."""
    before = 0
    for index, (rows, read) in enumerate(windows):
        yield index, before, rows, read
        before += rows


class Batcher(Iterator[tuple[Chunk, BatcherState]]):
    """Cut a source into batches of exactly ``batch_size`` rows, epoch after epoch.

    An epoch is one pass over the source in a shuffled order, built from windows of about
    ``shuffle_buffer`` rows, each permuted at random. A random-access source fills each window
    with blocks taken in a random order from the whole dataset, so the order on disk does not
    survive; a :class:`BlockSource` has its stored blocks (row groups, partitions) visited in a
    random order, whole or a window-sized piece at a time; other sources shuffle consecutive rows
    within each window. Every row appears exactly once per epoch, and a batch continues into the
    next epoch when a restartable source ends.

    Iterating yields ``(batch, state)``: the batch, and the state *after* it, from which a new
    batcher continues with the identical sequence.

    Parameters
    ----------
    source : Source
        Where the rows come from.
    batch_size : int
        Rows per batch.
    shuffle_buffer : int
        Rows per shuffle window; 0 keeps the source's order.
    state : dict
        Where to start, as returned with a batch (``{"seed", "epoch", "offset"}``).
    expected_rows : int, optional
        Rows an epoch must have, when the source cannot tell (the model's ``total_size``).
    check_finite : bool, default False
        Raise on NaN or infinite values, at the cost of one pass over each window's floats.
    dtypes : sequence of numpy dtypes, optional
        The dtype of each output's batches (a stream's float data in ``floatX``), converted once
        for all the batches of each call of :meth:`next_batches`; the source's own by default.
    """

    def __init__(
        self,
        source: Source,
        *,
        batch_size: int,
        shuffle_buffer: int,
        state: BatcherState,
        expected_rows: int | None = None,
        check_finite: bool = False,
        dtypes: Sequence[np.dtype] | None = None,
    ):
        self.source = source
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.expected_rows = source.num_rows if source.num_rows is not None else expected_rows
        self.check_finite = check_finite
        self._dtypes = (
            None
            if dtypes is None or all(d == spec.dtype for d, spec in zip(dtypes, source.specs))
            else tuple(dtypes)
        )
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.offset = int(state["offset"])
        self._windows: Iterator[Chunk] | None = None
        self._window: Chunk = ()
        self._position = 0
        self._deferred: BaseException | None = None
        # Data in memory: windows hold row numbers, and each batch is gathered in one copy.
        self._gather = source.take if source.random_access and source.gathers_rows else None
        # The block being read in pieces: (block, next piece, iterator of its pieces).
        self._open_block: tuple[int, int, Generator[Chunk]] | None = None

    @property
    def state(self) -> BatcherState:
        return self._state_at(self.offset)

    def _state_at(self, offset: int) -> BatcherState:
        return {"seed": self.seed, "epoch": self.epoch, "offset": offset}

    def __next__(self) -> tuple[Chunk, BatcherState]:
        return self.next_batches(1)[0]

    def next_batches(self, count: int) -> list[tuple[Chunk, BatcherState]]:
        """The next ``count`` batches, each with the state after it, cut from one gather.

        Preparing batches in groups keeps the Python work per step to popping a ready batch.
        If the source ends or fails partway, the complete batches come first, and the next
        call raises ``StopIteration`` or the source's exception. A ``KeyboardInterrupt`` (or
        another ``BaseException``) is raised at once: the batcher has then moved past rows it
        did not return, so the caller builds a new one from the last state it delivered.
        """
        block, states = self.next_block(count)
        return [(tuple(part[i] for part in block), state) for i, state in enumerate(states)]

    def next_block(self, count: int) -> tuple[Chunk, list[BatcherState]]:
        """The next ``count`` batches as one block per output, and the state after each batch.

        Each output's block has shape ``(batches, batch_size, ...)``, batch ``i`` in row ``i``:
        a view of the one gather the batches are cut from, not a copy. Fewer than ``count``
        batches only when the source ends or fails partway, as for :meth:`next_batches`.
        """
        if self._deferred is not None:
            error, self._deferred = self._deferred, None
            raise error
        pieces: list[Chunk] = []
        states: list[BatcherState] = []
        size = self.batch_size
        wanted = count * size
        taken = 0
        try:
            while taken < wanted:
                if not self._window or self._position == len(self._window[0]):
                    self._window = self._next_window()
                    self._position = 0
                take = min(wanted - taken, len(self._window[0]) - self._position)
                stop = self._position + take
                pieces.append(tuple(part[self._position : stop] for part in self._window))
                # Batches that end within this piece end in the current epoch.
                for end in range(taken // size * size + size, taken + take + 1, size):
                    states.append(self._state_at(self.offset + end - taken))
                self._position = stop
                self.offset += take
                taken += take
        except Exception as error:
            if not states:
                raise
            self._deferred = error
        rows = len(states) * size
        data = tuple(part[:rows] for part in _concat(pieces))
        if self._gather is not None:
            data = self._gather(data[0])
        if self._dtypes is not None:
            data = tuple(p.astype(d, copy=False) for p, d in zip(data, self._dtypes))
        return tuple(part.reshape(len(states), size, *part.shape[1:]) for part in data), states

    def _next_window(self) -> Chunk:
        while True:
            if self._windows is None:
                self._windows = self._epoch_windows(self.epoch, skip=self.offset)
            window = next(self._windows, None)
            if window is not None:
                if self.expected_rows is not None and (
                    self.offset + len(window[0]) > self.expected_rows
                ):
                    raise SourceDataError(
                        f"The source ({self.source!r}) yielded more than {self.expected_rows} "
                        f"rows in epoch {self.epoch}, the rows the stream expects (its "
                        "total_size). The data changed or total_size is wrong; the likelihood "
                        "would be scaled wrongly."
                    )
                return window
            self._end_epoch()

    def close(self) -> None:
        """Close the readers this batcher holds open (a block read in pieces, a pass of a file).

        A closed batcher must not be used again: build a new one from the last state.
        """
        self._close_block()
        windows, self._windows = self._windows, None
        if isinstance(windows, Generator):
            windows.close()

    def _end_epoch(self) -> None:
        rows = self.offset
        where = f"The source ({self.source!r})"
        if not self.source.restartable:
            # A one-shot source simply ends; the rows short of a full batch are dropped. Rows
            # other than total_size mean every step was scaled wrongly: say so.
            if self.expected_rows is not None and rows != self.expected_rows:
                raise SourceDataError(
                    f"{where} is a one-shot iterator that ended after {rows} rows, but the "
                    f"stream was told it has {self.expected_rows} (its total_size), so every "
                    f"step scaled the likelihood by {self.expected_rows} / batch_size instead of "
                    f"{rows} / batch_size. Give total_size={rows} (or use a source that "
                    "knows its rows) and fit again."
                )
            raise StopIteration
        if rows == 0:
            raise SourceDataError(f"{where} yielded no rows in epoch {self.epoch}.")
        if self.expected_rows is not None and rows != self.expected_rows:
            raise SourceDataError(
                f"{where} yielded {rows} rows in epoch {self.epoch}, but the stream expects "
                f"{self.expected_rows} (its total_size). The data changed or total_size is wrong; "
                "the likelihood would be scaled wrongly."
            )
        if rows < self.batch_size:
            raise SourceDataError(
                f"{where} has {rows} rows, fewer than batch_size={self.batch_size}. "
                "Use a smaller batch_size."
            )
        self.epoch += 1
        self.offset = 0
        self._windows = None

    def _shuffled(self, window: Chunk, epoch: int, index: int) -> Chunk:
        if self.check_finite:
            self._check_finite(window, epoch)
        if not self.shuffle_buffer:
            return window
        order = _window_rng(self.seed, epoch, index + 1).permutation(len(window[0]))
        # np.take gathers rows two to three times faster than fancy indexing.
        return tuple(np.take(part, order, axis=0) for part in window)

    def _check_finite(self, window: Chunk, epoch: int) -> None:
        """Raise on NaN or infinite values in one window of an epoch, counting them exactly.

        A window of data in memory holds row numbers: their rows are gathered and checked
        ``CHECK_ROWS`` at a time, so the check holds no window of values.
        """
        rows = len(window[0])
        gather = self._gather
        numbers = window[0] if gather is not None else None
        pieces: Iterator[tuple[int, Chunk]]
        if gather is None or numbers is None:
            pieces = iter([(0, window)])
        else:
            pieces = (
                (start, gather(numbers[start : start + CHECK_ROWS]))
                for start in range(0, rows, CHECK_ROWS)
            )
        counts: dict[int, int] = {}
        positions: dict[int, list[np.ndarray]] = {}
        for start, chunk in pieces:
            for i, part in enumerate(chunk):
                if part.dtype.kind not in "fc":
                    continue
                bad = ~np.isfinite(part)
                if bad.any():
                    counts[i] = counts.get(i, 0) + int(bad.sum())
                    in_rows = bad.reshape(len(part), -1).any(axis=1)
                    positions.setdefault(i, []).append(start + np.flatnonzero(in_rows))
        if not counts:
            return
        i = min(counts)
        bad_rows = np.concatenate(positions[i])
        where = ""
        if numbers is not None:  # row numbers of the data, which the user can look up
            shown = np.sort(numbers[bad_rows])
            listed = ", ".join(str(int(row)) for row in shown[:5])
            where = f" (rows {listed}{', ...' if len(shown) > 5 else ''})"
        raise SourceDataError(
            f"Output {i} of the source ({self.source!r}) has {counts[i]} NaN or infinite "
            f"value(s) in {len(bad_rows)} of the {rows} rows of a shuffle window read in epoch "
            f"{epoch}{where}; later windows are checked as they are read. Clean the data, or "
            "leave check_finite off to stream it unchecked."
        )

    def _epoch_windows(self, epoch: int, *, skip: int) -> Iterator[Chunk]:
        """The windows of an epoch from row ``skip`` of its order on, shuffled."""
        if self.source.random_access:
            windows = self._random_access_windows(epoch, skip)
        elif isinstance(self.source, BlockSource):
            windows = _numbered(self._block_windows(epoch))
        else:
            windows = _numbered(self._sequential_windows(epoch))
        for index, before, rows, read in windows:
            if before + rows <= skip:
                continue
            window = self._shuffled(read(), epoch, index)
            start = max(0, skip - before)
            yield tuple(part[start:] for part in window) if start else window

    def _random_access_windows(self, epoch: int, skip: int):
        """Yield ``(index, rows before, rows, read)`` per window, from the one holding ``skip``.

        An epoch reads blocks of ``block_rows`` rows, ``per_window`` to a window, in the order
        of a :class:`BlockOrder`: nothing is held per block, so memory does not depend on the
        rows a file declares, and a restored position is found without replaying the epoch.
        ``read`` fetches a window's blocks on demand.
        """
        n = cast(int, self.source.num_rows)  # random access: always known
        align = self.source.read_alignment
        if self.shuffle_buffer:
            block_rows = _round_up(max(1, self.shuffle_buffer // BLOCKS_PER_WINDOW), align)
            per_window = max(1, self.shuffle_buffer // block_rows)
            order: BlockOrder | _StorageOrder = BlockOrder(
                -(-n // block_rows), seed=self.seed, epoch=epoch
            )
        else:
            block_rows, per_window = _round_up(SEQUENTIAL_READ_ROWS, align), 1
            order = _StorageOrder()
        blocks = -(-n // block_rows)
        # Only the last block is short; every window before the one that holds it is full.
        short_by = blocks * block_rows - n
        last_at = order.position(blocks - 1)

        def rows_before(window: int) -> int:
            first = window * per_window
            return first * block_rows - (short_by if last_at < first else 0)

        windows = -(-blocks // per_window)
        window = min(skip // (per_window * block_rows), windows - 1)
        while window + 1 < windows and rows_before(window + 1) <= skip:
            window += 1
        for index in range(window, windows):
            positions = range(index * per_window, min((index + 1) * per_window, blocks))
            starts = [order[position] * block_rows for position in positions]
            rows = sum(min(block_rows, n - start) for start in starts)

            def read(starts=starts) -> Chunk:
                if self._gather is not None:
                    return (np.concatenate([np.arange(s, min(s + block_rows, n)) for s in starts]),)
                return _concat([self.source.read(s, s + block_rows) for s in starts])

            yield index, rows_before(index), rows, read

    def _block_windows(self, epoch: int):
        """Yield ``(rows, read)`` per window of whole blocks, visited in a random order.

        A window closes once it holds ``shuffle_buffer`` rows, so it holds at most that plus one
        block; without shuffling every block is its own window, in storage order. A source that
        ``splits_blocks`` has its larger blocks read in consecutive pieces of a window each.
        """
        source = cast(BlockSource, self.source)
        sizes = source.block_rows
        limit = self.shuffle_buffer or SEQUENTIAL_READ_ROWS
        order = np.flatnonzero(sizes)
        if self.shuffle_buffer:
            order = _window_rng(self.seed, epoch, 0).permutation(order)
        group: list[int] = []
        rows = 0
        for position, block in enumerate(order):
            index, size = int(block), int(sizes[block])
            if source.splits_blocks and size > limit:
                for piece in range(-(-size // limit)):
                    piece_rows = min(limit, size - piece * limit)
                    yield piece_rows, lambda i=index, k=piece: self._read_piece(i, k, limit)
                continue
            group.append(index)
            rows += size
            if rows >= self.shuffle_buffer or position == len(order) - 1:
                yield rows, lambda group=group: self._read_blocks(group)
                group, rows = [], 0
        if group:
            yield rows, lambda group=group: self._read_blocks(group)

    def _read_piece(self, index: int, piece: int, rows: int) -> Chunk:
        """Piece ``piece`` of block ``index``, continuing the block's reader when it is open."""
        source = cast(BlockSource, self.source)
        if self._open_block is not None and self._open_block[:2] == (index, piece):
            pieces = self._open_block[2]
        else:
            self._close_block()  # before opening the next: a reader holds buffers of its own
            pieces = source.iter_block(index, rows)
            for _ in range(piece):  # only after a restore into the middle of a block
                next(pieces)
        chunk = next(pieces, None)
        self._open_block = (index, piece + 1, pieces)
        size = source.block_rows[index]
        if (piece + 1) * rows >= size:
            self._close_block()
        expected = min(rows, size - piece * rows)
        return self._check_rows(chunk, index, expected, f"piece {piece} of block {index}")

    def _close_block(self) -> None:
        if self._open_block is not None:
            _, _, pieces = self._open_block
            self._open_block = None
            pieces.close()

    def _read_blocks(self, indices: list[int]) -> Chunk:
        source = cast(BlockSource, self.source)
        blocks = source.read_blocks(indices)
        for index, block in zip(indices, blocks):
            self._check_rows(block, index, source.block_rows[index], f"block {index}")
        return _concat(blocks)

    def _check_rows(self, chunk: Chunk | None, index: int, expected: int, what: str) -> Chunk:
        rows = 0 if chunk is None else len(chunk[0])
        if rows != expected:
            raise SourceDataError(
                f"The source ({self.source!r}) read {rows} rows for {what}, where it had "
                f"{expected} when the stream was opened. The data changed while it was being "
                "streamed."
            )
        return cast(Chunk, chunk)

    def _sequential_windows(self, epoch: int):
        """Yield ``(rows, read)`` per window of consecutive rows (each chunk when not shuffling)."""
        chunks = self.source.chunks()
        if not self.shuffle_buffer:
            for chunk in chunks:
                yield len(chunk[0]), lambda chunk=chunk: chunk
            return
        pieces: list[Chunk] = []
        filled = 0
        for chunk in chunks:
            while len(chunk[0]):
                take = min(self.shuffle_buffer - filled, len(chunk[0]))
                pieces.append(tuple(part[:take] for part in chunk))
                chunk = tuple(part[take:] for part in chunk)
                filled += take
                if filled == self.shuffle_buffer:
                    window, pieces, filled = _concat(pieces), [], 0
                    yield len(window[0]), lambda window=window: window
        if pieces:
            window = _concat(pieces)
            yield len(window[0]), lambda window=window: window
