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

from collections.abc import Iterator
from types import TracebackType
from typing import Any

import numpy as np

from rich.progress import Progress, ProgressColumn

from pymc.data_feed.blocks import BlockFunction
from pymc.data_feed.feeds import _DEFERRED_ERROR, DataFeed, FedSharedVariable, data_feeds_in

__all__ = ["DataFeeds"]


class DataFeeds:
    """The feeds of a fitting loop's compiled step function, driven as one.

    Parameters
    ----------
    function : pytensor Function, optional
        The step function; its fed inputs decide the feeds. None (or a function reading no fed
        data) gives no feeds, and every method does nothing.
    restart : bool, default True
        Start the data over (a new fit) rather than continue (``refine``).
    rng : numpy.random.RandomState or Generator, optional
        The fit's random state, from which one seed is drawn for the feeds, and only when
        there are feeds, so that fits without fed data draw exactly what they drew before.

    Examples
    --------
    A fitting loop uses it as ``Inference.fit`` does (or as a context manager, ``with feeds:``):

    .. code-block:: python

        with feeding_data(steps_per_call="auto"):
            step = compile([], loss, updates=updates)  # a BlockFunction if it reads fed data
        feeds = DataFeeds(step, restart=True, rng=rng)
        try:
            feeds.start(progress)  # the feeds' progress columns join the bar's
            for i in range(n):
                loss_i = feeds.step(step, n - i)  # before_step() and step(), or from a block
        finally:
            feeds.stop()
    """

    def __init__(self, function=None, *, restart: bool = True, rng=None):
        maker = getattr(function, "maker", None)
        variables = [] if maker is None else [inp.variable for inp in maker.inputs]
        self.feeds: list[DataFeed] = data_feeds_in(
            var for var in variables if isinstance(var, FedSharedVariable)
        )
        self.restart = restart
        self._rng = rng
        self._steps_per_call = getattr(function, "steps_per_call", None)
        self._started: list[DataFeed] = []
        # The outputs of the block that ran last, served one step at a time.
        self._block_results: Any = None
        self._block_steps = 0
        self._served = 0

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
        for feed, seed in zip(self.feeds, self._seeds()):
            feed.__dict__.pop(_DEFERRED_ERROR, None)  # from a block of an earlier loop
            try:
                feed.expect_blocks(self._steps_per_call)
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
        self._block_results, self._block_steps, self._served = None, 0, 0
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

    def step(self, function, remaining: int) -> Any:
        """Run one step of ``function`` on the next batch; return what the step returns.

        For a one-step function, this is :meth:`before_step` and a call. A
        :class:`~pymc.data_feed.BlockFunction` runs many steps per call: when the last block's
        steps are used up, this asks every feed for the next block of
        ``min(steps_per_call, remaining)`` batches (:meth:`DataFeed.before_block`) and calls
        the function once. Each call then returns the next step's outputs, with each fed
        variable holding that step's batch; the parameters are those after the whole block.

        Parameters
        ----------
        function : pytensor Function or BlockFunction
            The loop's step function, as given to the constructor.
        remaining : int
            Steps the loop still runs, this one included: a last block is no longer.

        Raises
        ------
        StopIteration
            When a feed has no batch left. After a block cut short by the end of the data (or
            an error), its steps come first.
        """
        if not isinstance(function, BlockFunction):
            self.before_step()
            return function()
        if self._served == self._block_steps:
            steps = min(function.steps_per_call, remaining)
            for feed in self.feeds:
                got = feed.before_block(steps, function.blocks_of(feed))
                if not 0 < got <= steps:
                    raise ValueError(
                        f"Data feed {feed.name!r} put {got} batches into a block of {steps}; "
                        "before_block returns how many it put in, from 1 to the number asked."
                    )
                steps = got  # the data ended: the steps every feed has batches for
            self._block_results = function(steps)
            self._block_steps, self._served = steps, 0
        j, self._served = self._served, self._served + 1
        for var, block in function.blocks.items():
            var.container.storage[0] = block.container.storage[0][j]
        results = self._block_results
        if results is None:
            return None
        if isinstance(results, list):
            return [result[j] for result in results]
        return results[j]

    def progress_columns(self) -> tuple[ProgressColumn, ...]:
        return tuple(column for feed in self.feeds for column in feed.progress_columns())

    def __bool__(self) -> bool:
        return bool(self.feeds)

    def __iter__(self) -> Iterator[DataFeed]:
        return iter(self.feeds)
