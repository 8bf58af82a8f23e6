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
"""A stream: the batches of a source, fed to PyTensor shared buffers that the model observes."""

import collections
import os
import sys
import threading
import time
import warnings

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

from pytensor.graph.basic import Variable
from rich.progress import ProgressColumn, Task
from rich.table import Column
from rich.text import Text

from pymc.data_feed import DataFeed, FedSharedVariable, data_feeds_in
from pymc.exceptions import StreamingError
from pymc.streaming.batching import SEQUENTIAL_READ_ROWS, Batcher, BatcherState
from pymc.streaming.prefetch import Exhausted, Failed, Prefetcher
from pymc.streaming.sources import Chunk, Source

__all__ = [
    "Stream",
    "StreamBuffer",
    "StreamEndedWarning",
    "StreamExhausted",
    "get_stream",
    "streams_in",
]


_PYMC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""Warnings point past PyMC's own frames, at the code that called the fit."""

READER_STOP_GRACE = 0.25
"""Seconds a Ctrl-C waits for the reader thread to finish the read it is in before pm.fit
returns: a source blocked in a read (a network, a slow disk) then ends the thread when the read
returns, and the stream does not use that reader again."""

SYNCHRONOUS_GROUP = 16
"""Batches prepared at once when reading in the main thread (``prefetch=0``): one gather and
one pass of bookkeeping serve 16 steps, for 16 batches of memory."""


def _fresh_seed() -> int:
    """A seed from the operating system's entropy, for a stream given none."""
    return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])


class StreamExhausted(Exception):
    """A one-shot stream has no full batch left."""


class StreamEndedWarning(UserWarning):
    """A fit ended before the steps asked for, because its one-shot source ran out."""


class StreamBuffer(FedSharedVariable):
    """A shared variable holding the current batch of one output of a :class:`Stream`.

    As fed data (:class:`pymc.data_feed.FedSharedVariable`) it is recognisable in any graph:
    ``total_size`` is inferred from it, ``pm.fit`` refreshes it, and every other compiled
    function refuses it.

    Attributes
    ----------
    output : int
        Which output of the stream's source it holds.
    """

    data_feed: "Stream"
    output: int

    @property
    def stream(self) -> "Stream":
        return self.data_feed


class Stream(DataFeed):
    """Batches of a source, delivered into shared buffers before each step of a fit.

    Created by ``pm.Minibatch(..., streaming=True)``; see
    :func:`pymc.streaming.streaming_minibatch` for the options. Reading runs in a background
    thread only while a fit uses the stream; outside a fit, :meth:`next_batch` reads in the
    calling thread.

    The position is a plain dict, ``{"seed", "epoch", "offset"}`` (:meth:`get_state`): restoring
    it into a stream over the same source with the same options (:meth:`set_state`) continues
    the identical batch sequence, and the next ``pm.fit`` starts from it. A pickled stream (with
    the model or approximation that holds it) keeps its source and position, not its threads.
    """

    def __init__(
        self,
        source: Source,
        *,
        batch_size: int,
        shuffle_buffer: int,
        seed: int | None,
        prefetch: int,
        total_size: int | None,
        check_finite: bool,
        name: str,
    ):
        super().__init__(name)
        self.source = source
        self.batch_size = batch_size
        self.shuffle_buffer = shuffle_buffer
        self.prefetch = prefetch
        self.total_size = total_size
        self.check_finite = check_finite
        self.seed_given = seed is not None
        # Float data in floatX, as pm.Data converts it: in the buffers and in every batch.
        self.dtypes = tuple(
            np.dtype(pytensor.config.floatX) if spec.dtype.kind == "f" else spec.dtype
            for spec in source.specs
        )
        self._state: BatcherState = {
            "seed": seed if seed is not None else _fresh_seed(),
            "epoch": 0,
            "offset": 0,
        }
        self._positioned = False
        self._reset_reading()
        self.steps = 0  # batches delivered, over all fits
        self.buffers = tuple(
            self._make_buffer(i, part) for i, part in enumerate(self._initial_batch())
        )

    def _reset_reading(self) -> None:
        """The transient part of a stream: what reads, and what was read but not delivered."""
        self._batcher: Batcher | None = None
        self._reader: Prefetcher | None = None
        # A reader stopped while blocked in a read: it ends when the read returns.
        self._stale_reader: Prefetcher | None = None
        self._pending: collections.deque = collections.deque()  # _Run, Exhausted or Failed
        self._run_size: int | None = None  # batches per read, for a fit in blocks
        self._interrupted = False
        self._in_use = threading.Lock()
        self._fit_started = 0.0
        self._fit_batches = 0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_batcher", "_reader", "_stale_reader", "_pending", "_in_use"):
            del state[transient]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset_reading()

    # --- the data feed ---------------------------------------------------------------------
    @property
    def shared_variables(self) -> tuple[FedSharedVariable, ...]:
        return self.buffers

    def start(self, *, restart: bool, random_seed: int | None) -> None:
        """Start feeding a fit: start over (``restart``) unless positioned, then read ahead.

        Raises
        ------
        StreamingError
            If another fit is reading this stream at the same time.
        """
        if not self._in_use.acquire(blocking=False):
            raise StreamingError(
                f"Stream {self.name!r} is already feeding a fit that is running (in another "
                "thread). One stream feeds one fit at a time: wait for that fit to end, or build "
                "this model with its own pm.Minibatch(..., streaming=True)."
            )
        try:
            super().start(restart=restart, random_seed=random_seed)
            if restart:
                self.begin_fit(random_seed)
            self._fit_started, self._fit_batches = time.perf_counter(), 0
            self.start_reading()
        except BaseException as error:
            # Also a Ctrl-C while the reader thread starts: stop it, or it would poll forever.
            try:
                self.stop_reading(interrupted=isinstance(error, KeyboardInterrupt))
            finally:
                self._in_use.release()
            raise

    def expect_blocks(self, steps: int | None) -> None:
        """Read runs of ``steps`` batches for the fit about to start (None: of one batch each).

        A reader thread then prepares whole blocks, which :meth:`before_block` hands over
        without copying. Memory: the reader queues a few blocks (see ``start_reading``).
        """
        self._run_size = steps

    def before_block(self, steps: int, blocks) -> int:
        """Put the next ``steps`` batches into the blocks of a block function; return how many.

        Fewer than ``steps`` when a one-shot source ends or the source fails after some; the
        next call then raises ``StopIteration`` (with a :class:`StreamEndedWarning`) or the
        error. The buffers hold the block's last batch afterwards.
        """
        try:
            block, got = self.next_block(steps)
        except StreamExhausted as end:
            raise self._end_of_fit(end) from None
        except KeyboardInterrupt:
            self._interrupted = True  # as in before_step
            raise
        for var, buffer in blocks.items():
            buffer.set_value(block[var.output], borrow=True)
        for buffer, part in zip(self.buffers, block):
            buffer.set_value(part[got - 1], borrow=True)
        self._fit_batches += got
        return got

    def before_step(self) -> None:
        """Put the next batch into the buffers; ``StopIteration`` when a one-shot source ends."""
        try:
            self.refresh()
        except StreamExhausted as end:
            raise self._end_of_fit(end) from None
        except KeyboardInterrupt:
            # Most likely while waiting for a reader stuck in a read: stop() will not wait.
            self._interrupted = True
            raise
        self._fit_batches += 1

    def _end_of_fit(self, end: StreamExhausted) -> StopIteration:
        """Warn that a one-shot source ended the fit; return the StopIteration that ends it."""
        message = f"{end}; the fit stops here, before the steps it was asked for."
        warnings.warn(message, StreamEndedWarning, skip_file_prefixes=(_PYMC_DIR,))
        return StopIteration(message)

    def stop(self) -> None:
        """End a fit's feeding: stop the reader thread and close what the reading opened.

        The position stays at the last batch delivered, and the next read goes on from there;
        files the source opened are closed (it opens them again if it is read again), so a
        fitted model holds no file, memory map or thread. After a Ctrl-C that came while the
        step waited for a batch, the reader thread is not waited for beyond
        ``READER_STOP_GRACE`` seconds: a source blocked in a read then ends its thread when the
        read returns. A Ctrl-C while stopping stops the waiting at once, and ends the fit as a
        Ctrl-C does (the loop returns its approximation).
        """
        in_flight = sys.exception()  # the loop's error, if it stops the feed while unwinding
        interrupted = self._interrupted or isinstance(in_flight, KeyboardInterrupt)
        self._interrupted = False
        try:
            try:
                self.stop_reading(interrupted=interrupted)
            except KeyboardInterrupt:
                # Pressed while waiting for the reader, which is left to end by itself: the fit
                # ends as on any Ctrl-C, returning what it has.
                pass
            if self._stale_reader is None:
                self.close()
        finally:
            if self._in_use.locked():
                self._in_use.release()
        if (
            isinstance(in_flight, FloatingPointError)
            and str(in_flight).startswith("NaN occurred in optimization")
            and not self.check_finite
        ):
            in_flight.add_note(self._nan_advice())

    def progress_columns(self) -> tuple[ProgressColumn, ...]:
        return (_StreamColumn(self),)

    def status(self) -> str:
        """The epoch and the rows per second of the running fit, as the progress bar shows."""
        elapsed = time.perf_counter() - self._fit_started
        speed = self._fit_batches * self.batch_size / elapsed if elapsed > 0 else 0.0
        # Counted from 1 here, as progress bars do; the stream's state counts from 0.
        return f"epoch {self.epoch + 1} · {speed:,.0f} rows/s"

    def refusal_advice(self) -> str:
        return (
            "Streaming minibatches are for fits that read a fresh batch every step: pm.fit "
            "(ADVI, FullRankADVI, SVGD, ASVGD) and pymc-extras' Trainer and fit_advi. For the "
            "exact full-data posterior mode and Pathfinder, use pymc_extras.fit(method="
            '"pathfinder"), which passes over the whole stream. For predictions, posterior '
            "predictive checks and log-likelihoods on streamed data, see pymc_extras.streaming. "
            "For MCMC, SMC and find_MAP, build the model on data in memory."
        )

    def declare_num_rows(self, rows: int) -> None:
        """Learn the rows per epoch from the model's ``total_size`` (sources that cannot tell)."""
        self.total_size = rows

    # --- the graph side -------------------------------------------------------------------
    def _initial_batch(self) -> Chunk:
        """The first rows of the source, repeated to a full batch: valid data before any step."""
        head = self.source.head(self.batch_size)
        rows = np.arange(self.batch_size) % len(head[0])
        return tuple(np.ascontiguousarray(p[rows], dtype=d) for p, d in zip(head, self.dtypes))

    def _make_buffer(self, output: int, value: np.ndarray) -> StreamBuffer:
        # Every batch has batch_size rows, but the type leaves the shape open, as pm.Data does:
        # the compiled step is then the one a hand-written set_value loop compiles (bit for bit
        # the same fit), and a full-data pass can reuse the graph on chunks of any size.
        tensor_type = pt.TensorType(value.dtype, shape=(None,) * value.ndim)
        buffer = StreamBuffer(
            type=tensor_type, value=value, strict=False, name=f"{self.name}.{output}"
        )
        buffer.data_feed = self
        buffer.output = output
        return buffer

    # --- position -------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self._state["epoch"]

    @property
    def seed(self) -> int:
        return self._state["seed"]

    def get_state(self) -> BatcherState:
        """Return the position after the last batch delivered, as a plain dict."""
        return dict(self._state)

    def set_state(self, state: BatcherState) -> None:
        """Continue from a position returned by :meth:`get_state`.

        The next ``pm.fit`` continues from here rather than starting the stream over.
        """
        if not isinstance(state, dict) or set(state) != {"seed", "epoch", "offset"}:
            raise ValueError(
                f"A stream state is a dict with keys 'seed', 'epoch' and 'offset', got {state!r}. "
                "Pass what Stream.get_state() returned."
            )
        if any(not isinstance(v, int | np.integer) or v < 0 for v in state.values()):
            raise ValueError(f"Stream state values must be non-negative integers, got {state!r}.")
        state = {key: int(value) for key, value in state.items()}
        if not self.source.restartable:
            if state != self._state:
                raise ValueError(
                    f"Stream {self.name!r} reads a one-shot iterator, which cannot go back to "
                    f"{state!r}; it is at {self._state!r}. Use a re-iterable source to resume."
                )
        else:
            self._reposition(state)
        self._positioned = True

    def restart(self, seed: int | None = None) -> None:
        """Go back to the start of epoch 0, optionally with a new seed for the shuffles."""
        if not self.source.restartable:
            return
        self._reposition({"seed": self.seed if seed is None else seed, "epoch": 0, "offset": 0})

    def _reposition(self, state: BatcherState) -> None:
        self.stop_reading()
        self._drop_stale_reader()
        self._pending.clear()
        self._close_batcher()
        self._state = state

    def close(self) -> None:
        """Release what reading holds open: the batcher's open files and the source's.

        Nothing is lost: the next read goes on after the last batch delivered (re-reading
        the batches read ahead but not delivered). A one-shot source is left as it is, since
        its position lives in its iterator.
        """
        if not self.source.restartable:
            return
        self.stop_reading()
        self._drop_stale_reader()
        self._pending.clear()
        self._close_batcher()
        self.source.close()

    def _close_batcher(self) -> None:
        batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()

    def _drop_stale_reader(self) -> None:
        """Forget a reader left blocked in a read; a one-shot source waits for its rows."""
        if self._stale_reader is None:
            return
        if self.source.restartable:
            # Its batcher is its own: the next read starts a new one from the state.
            self._stale_reader = None
            self._batcher = None
            self._pending.clear()
            return
        leftover = self._stale_reader.stop()
        self._stale_reader = None
        for got in leftover or ():
            self._keep(got)

    def _nan_advice(self) -> str:
        """A note for a NaN loss: whether the batch in the buffers holds NaN, and what to do."""
        bad = [
            i
            for i, buffer in enumerate(self.buffers)
            if buffer.dtype.startswith("float")
            and not np.isfinite(buffer.get_value(borrow=True)).all()
        ]
        if bad:
            found = (
                f"The batch that stream {self.name!r} had put in the model holds NaN or infinite "
                f"values (output(s) {', '.join(map(str, bad))}): the data has them."
            )
        else:
            found = f"The data of stream {self.name!r} may hold NaN or infinite values."
        return (
            f"{found} Pass check_finite=True to pm.Minibatch(..., streaming=True) to have "
            "them reported with the output and rows where they are, and clean the data."
        )

    def begin_fit(self, random_seed: int | None) -> None:
        """Start the stream over for a new fit, as ``pm.fit`` reseeds PyMC's random generators.

        A position set with :meth:`set_state` since the last fit is kept instead. Without a
        ``random_seed`` of its own, the stream takes ``random_seed``, which the fit draws from
        its own random state (fresh entropy when it is None).
        """
        if self._positioned:
            self._positioned = False
            return
        if self.seed_given or not self.shuffle_buffer:
            self.restart()
        elif random_seed is None:
            self.restart(seed=_fresh_seed())
        else:
            self.restart(seed=int(random_seed))

    # --- reading --------------------------------------------------------------------------
    def _new_batcher(self) -> Batcher:
        return Batcher(
            self.source,
            batch_size=self.batch_size,
            shuffle_buffer=self.shuffle_buffer,
            state=self._state,
            expected_rows=self.total_size,
            check_finite=self.check_finite,
            dtypes=self.dtypes,
        )

    def start_reading(self) -> None:
        """Start the background reader (when ``prefetch`` > 0); idempotent."""
        if self.prefetch and self._reader is None:
            self._drop_stale_reader()
            if self._batcher is None:
                self._batcher = self._new_batcher()
            # Batches travel in groups: one lock round trip per group keeps the main thread's
            # share of the reading to a buffer swap. Reads come a window at a time (a shuffle
            # window, or a block or chunk when not shuffling), so the queue also holds one
            # window's batches: the thread then reads the next window while the step consumes
            # this one. Its batches are views of the window, so that costs one window of memory.
            # A fit that runs many steps per call reads whole blocks, handed over as they are.
            group = self._run_size or max(1, self.prefetch // 2)
            # Never more than an epoch ahead, so a fault in a small source surfaces promptly.
            window_rows = min(
                max(self.shuffle_buffer, SEQUENTIAL_READ_ROWS), self.num_rows or 2**62
            )
            window_groups = -(-window_rows // (group * self.batch_size))
            self._reader = Prefetcher(
                _groups(self._batcher, group),
                depth=2 + window_groups,
                name=f"pymc-stream-{self.name}",
                start=False,
            )
            # Known to the stream before it starts, so that an interrupted start stops it.
            self._reader.start()

    def stop_reading(self, *, interrupted: bool = False) -> None:
        """Stop the background reader, keeping the batches it prepared for the next read.

        ``interrupted`` (a Ctrl-C) waits ``READER_STOP_GRACE`` seconds at most for the read in
        progress: a read that blocks longer is left to end its thread when it returns (the
        stream does not use that reader again).
        """
        if self._reader is None:
            return
        reader, self._reader = self._reader, None
        self._stale_reader = reader  # until what it prepared is collected
        leftover = reader.stop(timeout=READER_STOP_GRACE if interrupted else None)
        if leftover is None:
            return
        self._stale_reader = None
        for got in leftover:
            self._keep(got)

    def _keep(self, got) -> None:
        """Queue what a read returned: a run of batches, or an end or failure marker."""
        self._pending.append(got)

    def _head(self, batches: int):
        """The next run of batches not yet delivered (or a marker), reading ``batches`` if none."""
        if not self._pending:
            if self._reader is not None:
                self._keep(self._reader.get())
            else:
                self._drop_stale_reader()
                if self._batcher is None:
                    self._batcher = self._new_batcher()
                try:
                    self._keep(_next_group(self._batcher, batches))
                except BaseException:
                    # A Ctrl-C mid-read: the batcher moved past rows it did not return. Go on
                    # from the last batch delivered (a one-shot source cannot: its rows read
                    # so far are lost, as upstream's own iterators lose them).
                    if self.source.restartable:
                        self._close_batcher()
                    raise
        return self._pending[0]

    def _raise_marker(self, item) -> None:
        if isinstance(item, Exhausted):  # stays queued: the stream stays exhausted
            raise StreamExhausted(
                f"Stream {self.name!r} reached the end of its one-shot source after {self.steps} "
                f"batches"
            )
        # Start over from the last good position if the stream is used again.
        self._reposition(self._state)
        raise item.error

    def next_batch(self) -> Chunk:
        """Return the next batch, one array per output.

        Raises
        ------
        StreamExhausted
            When a one-shot source has no full batch left.
        Exception
            Whatever the source raised, with its original type and traceback.
        """
        run = self._head(SYNCHRONOUS_GROUP)
        if not isinstance(run, _Run):
            self._raise_marker(run)
        batch = tuple(part[run.used] for part in run.block)
        self._state = run.states[run.used]
        run.used += 1
        if run.used == len(run.states):
            self._pending.popleft()
        self.steps += 1
        return batch

    def next_block(self, batches: int) -> tuple[Chunk, int]:
        """Return the next ``batches`` batches as one block per output, and how many there are.

        Each block has shape ``(batches, batch_size, ...)``. Read in runs of that many batches
        (see :meth:`expect_blocks`), a block is a view of what the reader gathered, not a copy.
        Fewer batches only when the source ends or fails after some; the next call raises.

        Raises
        ------
        StreamExhausted, Exception
            As :meth:`next_batch`, when there is no batch to deliver.
        """
        pieces: list[Chunk] = []
        got = 0
        while got < batches:
            run = self._head(batches - got)
            if not isinstance(run, _Run):
                if got:
                    break  # the end or the failure comes at the next call
                self._raise_marker(run)
            take = min(batches - got, len(run.states) - run.used)
            pieces.append(tuple(part[run.used : run.used + take] for part in run.block))
            self._state = run.states[run.used + take - 1]
            run.used += take
            got += take
            if run.used == len(run.states):
                self._pending.popleft()
        self.steps += got
        block = pieces[0] if len(pieces) == 1 else tuple(np.concatenate(p) for p in zip(*pieces))
        return block, got

    def refresh(self) -> None:
        """Put the next batch into the buffers."""
        for buffer, part in zip(self.buffers, self.next_batch()):
            buffer.set_value(part, borrow=True)  # the batcher's own array: no copy

    def __repr__(self) -> str:
        return (
            f"Stream({self.name!r}, {self.source!r}, batch_size={self.batch_size}, "
            f"rows={self.num_rows}, state={self._state})"
        )

    @property
    def num_rows(self) -> int | None:
        """Rows per epoch: the source's count, or the ``total_size`` given for it."""
        return self.source.num_rows if self.source.num_rows is not None else self.total_size


class _Run:
    """Batches read together: a block per output, the states after them, how many delivered."""

    __slots__ = ("block", "states", "used")

    def __init__(self, block: Chunk, states: list[BatcherState]):
        self.block, self.states, self.used = block, states, 0


def _next_group(batcher: Batcher, size: int) -> _Run | Exhausted | Failed:
    """Up to ``size`` batches with their states, or the marker of the end or of a failure.

    A ``KeyboardInterrupt`` is not an error of the source: it is raised at once.
    """
    try:
        return _Run(*batcher.next_block(size))
    except StopIteration:
        return Exhausted()
    except Exception as error:  # delivered to the consumer, after the batches before it
        return Failed(error)


def _groups(batcher: Batcher, size: int) -> Iterator[_Run]:
    """Runs of batches for the Prefetcher, which marks the end and failures itself."""
    while True:
        try:
            run = _Run(*batcher.next_block(size))
        except StopIteration:
            return
        yield run


def streams_in(variables: Iterable[Variable]) -> list[Stream]:
    """The streams whose buffers the graphs of ``variables`` read, in order of first use."""
    return [feed for feed in data_feeds_in(variables) if isinstance(feed, Stream)]


class _StreamColumn(ProgressColumn):
    """The epoch and rows per second of one stream, after a fit's usual progress columns."""

    def __init__(self, stream: Stream):
        super().__init__(table_column=Column(no_wrap=True))
        self._stream = stream

    def render(self, task: Task) -> Text:
        return Text(self._stream.status(), style="progress.data")


def get_stream(variable: Variable) -> Stream:
    """Return the stream behind a streaming minibatch variable (or a graph that uses one).

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> x_mb = pm.Minibatch(np.arange(1000.0), batch_size=10, streaming=True, random_seed=1)
    >>> stream = pm.streaming.get_stream(x_mb)
    >>> state = stream.get_state()
    >>> first = stream.next_batch()[0]
    >>> stream.set_state(state)
    >>> bool((stream.next_batch()[0] == first).all())
    True
    """
    streams = streams_in([variable])
    if len(streams) != 1:
        raise ValueError(
            f"{variable} uses {len(streams)} streams; get_stream needs a variable made by "
            "pm.Minibatch(..., streaming=True) or a graph using exactly one of them."
        )
    return streams[0]
