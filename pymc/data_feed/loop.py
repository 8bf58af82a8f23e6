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
"""The hook of a fitting loop: start its step function's feeds, feed every step, stop them."""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from pytensor.compile import Function
from rich.progress import Progress, ProgressColumn

from pymc.data_feed.feeds import DataFeed, FedSharedVariable, data_feeds_in

__all__ = ["DataFeeds", "MultiStepFunction"]


class MultiStepFunction(ABC):
    """A fitting loop's step function that runs several steps per compiled call.

    A loop drives it like a one-step function, through :meth:`DataFeeds.step`, which hands it
    the feeds: it asks them for a block of batches when its last block is used up
    (:meth:`DataFeed.before_block`), runs the block in one call, and returns the outputs of one
    step per :meth:`next_step`, in order. ``pm.fit(..., steps_per_call=...)`` builds one
    (:mod:`pymc.variational.blocks`).

    Attributes
    ----------
    steps_per_call : int
        Steps of a full block.
    """

    steps_per_call: int

    @property
    @abstractmethod
    def fed_variables(self) -> tuple[FedSharedVariable, ...]:
        """The fed variables whose batches the steps read."""

    @abstractmethod
    def next_step(self, feeds: Sequence[DataFeed], remaining: int) -> Any:
        """Return the outputs of the next step, running the next block first if needed.

        Parameters
        ----------
        feeds : sequence of DataFeed
            The feeds of :attr:`fed_variables`, started.
        remaining : int
            Steps the loop still runs, this one included: a block is never longer.

        Raises
        ------
        StopIteration
            When a feed has no batch left. After a block cut short by the end of the data (or
            an error), its steps come first.
        """

    @abstractmethod
    def reset(self) -> None:
        """Forget the steps of the last block not served yet: a loop starts."""


class DataFeeds:
    """The feeds of a fitting loop's compiled step function, driven as one.

    Parameters
    ----------
    function : pytensor Function or MultiStepFunction, optional
        The step function; the fed variables it reads decide the feeds. None (or a function
        reading no fed data) gives no feeds, and every method does nothing but call it.
    restart : bool, default True
        Start the data over (a new fit) rather than continue (``refine``).
    rng : numpy.random.RandomState or Generator, optional
        The fit's random state, from which one seed is drawn for the feeds, and only when
        there are feeds, so that fits without fed data draw exactly what they drew before.

    Examples
    --------
    A fitting loop uses it as ``Inference.fit`` does (or as a context manager, ``with feeds:``):

    .. code-block:: python

        with feeding_data():  # the loop feeds what the step reads: compile allows it
            step = compile([], loss, updates=updates)
        feeds = DataFeeds(step, restart=True, rng=rng)
        try:
            feeds.start(progress)  # the feeds' progress columns join the bar's
            for i in range(n):
                loss_i = feeds.step(step, n - i)  # before_step() and step()
        finally:
            feeds.stop()
    """

    def __init__(
        self,
        function: Function | MultiStepFunction | None = None,
        *,
        restart: bool = True,
        rng: np.random.RandomState | np.random.Generator | None = None,
    ):
        self._function = function
        if isinstance(function, MultiStepFunction):
            variables: Sequence[Any] = function.fed_variables
        elif isinstance(function, Function):
            variables = [put.variable for put in function.maker.inputs]
        else:
            variables = []
        self.feeds: list[DataFeed] = data_feeds_in(
            var for var in variables if isinstance(var, FedSharedVariable)
        )
        self.restart = restart
        self._rng = rng
        self._started: list[DataFeed] = []

    def _seeds(self) -> list[int | None]:
        if not self.restart or self._rng is None:
            return [None] * len(self.feeds)
        if isinstance(self._rng, np.random.Generator):
            seed = int(self._rng.integers(2**30))
        else:
            seed = int(self._rng.randint(2**30, dtype=np.int64))
        sequences = np.random.SeedSequence(seed).spawn(len(self.feeds))
        return [int(sequence.generate_state(1)[0]) for sequence in sequences]

    def start(self, progress: Progress | None = None) -> None:
        """Start every feed (and add their columns to ``progress``, a rich progress bar).

        If one fails to start, those started before it are stopped, and the error raised.
        """
        blocks = None
        if isinstance(self._function, MultiStepFunction):
            self._function.reset()
            blocks = self._function.steps_per_call
        for feed, seed in zip(self.feeds, self._seeds()):
            try:
                feed.expect_blocks(blocks)
                feed.start(restart=self.restart, random_seed=seed)
            except BaseException:
                self.stop()
                raise
            self._started.append(feed)
        if progress is not None:
            progress.columns = (*progress.columns, *self.progress_columns())

    def stop(self) -> None:
        """Stop the feeds that were started, last first; safe to call more than once."""
        started, self._started = self._started, []
        for feed in reversed(started):
            feed.stop()

    def __enter__(self) -> "DataFeeds":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def before_step(self) -> None:
        """Put the next batch into every feed's variables (``StopIteration`` at the end)."""
        for feed in self.feeds:
            feed.before_step()

    def step(self, function: Function | MultiStepFunction, remaining: int) -> Any:
        """Run the next step of ``function``; return what the step returns.

        For a one-step function, this is :meth:`before_step` and a call. A
        :class:`MultiStepFunction` serves the step itself (:meth:`MultiStepFunction.next_step`).

        Parameters
        ----------
        function : pytensor Function or MultiStepFunction
            The loop's step function, as given to the constructor.
        remaining : int
            Steps the loop still runs, this one included.

        Raises
        ------
        StopIteration
            When a feed has no batch left.
        """
        if isinstance(function, MultiStepFunction):
            return function.next_step(self.feeds, remaining)
        self.before_step()
        return function()

    def progress_columns(self) -> tuple[ProgressColumn, ...]:
        """The progress columns of every feed, in order."""
        return tuple(column for feed in self.feeds for column in feed.progress_columns())

    def __bool__(self) -> bool:
        return bool(self.feeds)

    def __iter__(self) -> Iterator[DataFeed]:
        return iter(self.feeds)
