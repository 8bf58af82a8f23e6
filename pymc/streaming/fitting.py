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
"""Hooks into PyMC's inference: refresh streams before each step of ``pm.fit``; refuse MCMC."""

import contextlib
import sys
import time

from collections.abc import Iterator

import numpy as np

from rich.progress import ProgressColumn, Task
from rich.table import Column
from rich.text import Text

from pymc.streaming.errors import StreamingNotSupportedError
from pymc.streaming.stream import Stream, StreamBuffer, StreamExhausted, streams_in

__all__ = [
    "StreamingStep",
    "progress_columns",
    "refreshing_streams",
    "refuse_streaming",
]


READER_SWITCH_INTERVAL = 0.0002
"""Seconds between GIL hand-overs while a streaming fit runs a reader thread (Python's default
is 0.005): about two ADVI steps of a small model."""


@contextlib.contextmanager
def short_gil_turns(active: bool = True):
    """Shorten Python's GIL switch interval to ``READER_SWITCH_INTERVAL`` while ``active``.

    Compiled PyTensor calls hold the GIL for their whole run, so a reader thread back from I/O
    waits a full switch interval (5 ms by default) for its next few lines: with reads of a few
    ms, that starves the reader. Shorter turns let it keep ahead. The interval is restored on
    exit.
    """
    switch_interval = sys.getswitchinterval()
    if active:
        sys.setswitchinterval(min(switch_interval, READER_SWITCH_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(switch_interval)


class StreamingStep:
    """A compiled step function that puts fresh batches into its streams' buffers before each call.

    Everything else (``profile``, ``maker``, ...) is the wrapped function's.
    """

    def __init__(self, function, streams: list[Stream]):
        self.function = function
        self.streams = streams
        self.steps = 0
        self.start_clock()

    def start_clock(self) -> None:
        """Measure rows per second from now (each fit or refine)."""
        self.rows = 0
        self._started = time.perf_counter()

    def __call__(self, *args, **kwargs):
        try:
            for stream in self.streams:
                stream.refresh()
        except StreamExhausted as end:
            # Upstream's fit loops end cleanly on StopIteration and log its message.
            raise StopIteration(f"{end}; pm.fit ran {self.steps} steps on it.") from None
        self.steps += 1
        self.rows += self.streams[0].batch_size
        return self.function(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.function, name)

    def status(self) -> str:
        elapsed = time.perf_counter() - self._started
        speed = self.rows / elapsed if elapsed > 0 else 0.0
        # Counted from 1 here, as progress bars do; the stream's state counts from 0.
        return f"epoch {self.streams[0].epoch + 1} · {speed:,.0f} rows/s"


def _streams_of(function) -> list[Stream]:
    maker = getattr(function, "maker", None)
    if maker is None:
        return []
    return streams_in(
        [inp.variable for inp in maker.inputs if isinstance(inp.variable, StreamBuffer)]
    )


_active_steps: list[StreamingStep] = []


@contextlib.contextmanager
def refreshing_streams(step_function, approx=None, *, restart: bool) -> Iterator:
    """Yield ``step_function`` refreshing the streams it reads, with their readers running.

    A no-op for a function that reads no stream. With ``restart`` (``Inference.fit``), each
    stream starts over, as upstream reseeds its random generators for each fit; without it
    (``Inference.refine``), streams continue. The readers stop when the block exits, however
    it exits.
    """
    if isinstance(step_function, StreamingStep):
        step = step_function
    else:
        streams = _streams_of(step_function)
        if not streams:
            yield step_function
            return
        step = StreamingStep(step_function, streams)
    if restart:
        for stream in step.streams:
            stream.begin_fit(lambda: _derive_seed(approx))
    step.start_clock()
    _active_steps.append(step)
    try:
        with short_gil_turns(any(stream.prefetch for stream in step.streams)):
            for stream in step.streams:
                stream.start_reading()
            yield step
    finally:
        _active_steps.remove(step)
        for stream in step.streams:
            stream.stop_reading()


def _derive_seed(approx) -> int:
    groups = getattr(approx, "groups", None) or []
    rng = getattr(approx, "rng", None) or (groups[0].rng if groups else None)
    if rng is None:
        return int(np.random.SeedSequence().entropy)
    return int(rng.randint(2**30, dtype=np.int64))


class _StreamColumn(ProgressColumn):
    def __init__(self):
        super().__init__(table_column=Column(no_wrap=True))

    def render(self, task: Task) -> Text:
        return Text(_active_steps[-1].status() if _active_steps else "", style="progress.data")


def progress_columns() -> tuple[ProgressColumn, ...]:
    """Extra progress-bar columns while a streaming fit runs: epoch and rows per second."""
    return (_StreamColumn(),) if _active_steps else ()


def refuse_streaming(model, method: str) -> None:
    """Raise if ``model`` observes streaming minibatches, for methods that need all the data.

    Raises
    ------
    StreamingNotSupportedError
    """
    variables = [*model.observed_RVs, *model.free_RVs, *model.deterministics, *model.potentials]
    streams = streams_in(variables)
    if streams:
        names = ", ".join(stream.name for stream in streams)
        raise StreamingNotSupportedError(
            f"{method} needs the whole dataset at every evaluation, but this model observes "
            f"streaming minibatches ({names}). Streaming minibatches are for variational "
            "inference: use pm.fit (ADVI, FullRankADVI, SVGD, ASVGD), or Pathfinder, which "
            "passes over the full data. For MCMC, build the model on in-memory data."
        )
