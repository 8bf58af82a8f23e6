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
"""Data feeds: shared variables that a fitting loop fills with new data between compiled calls.

A model may observe data that does not sit in the graph: a :class:`FedSharedVariable` holds one
batch of a larger dataset, and a :class:`DataFeed` puts the next batch into it before every
compiled call of a fitting loop (``pm.fit``, pymc-extras' ``Trainer``). Any other way of
evaluating such a model would see one batch as if it were the data, so functions compiled with
:func:`pymc.pytensorf.compile` refuse to read fed data unless the caller feeds it
(:func:`feeding_data`). :class:`DataFeeds` is the hook the fitting loops call.
"""

import contextlib
import contextvars
import sys

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import numpy as np

from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors
from pytensor.tensor.sharedvar import TensorSharedVariable
from rich.progress import ProgressColumn

from pymc.exceptions import SourceDataError, StreamingNotSupportedError

__all__ = [
    "DataFeed",
    "DataFeeds",
    "FedSharedVariable",
    "data_feeds_in",
    "feeding_data",
    "refuse_fed_data",
]


class FedSharedVariable(TensorSharedVariable):
    """A shared variable whose value a :class:`DataFeed` replaces between compiled calls.

    Its value is one batch of a larger dataset. A model can observe it like any data, and a
    fitting loop that feeds it (``pm.fit``) refreshes it before every step; every other compiled
    function refuses it (see :func:`refuse_fed_data`).

    Attributes
    ----------
    data_feed : DataFeed
        The feed that fills it.
    """

    data_feed: "DataFeed"

    def clone(self, **kwargs):
        # PyTensor clones shared variables when it rebuilds graphs (e.g. model transforms); a
        # clone shares the value's container, and must share its feed too.
        clone = super().clone(**kwargs)
        clone.__dict__.update(
            {key: value for key, value in self.__dict__.items() if key not in clone.__dict__}
        )
        return clone


class DataFeed(ABC):
    """Puts new data into some :class:`FedSharedVariable` objects between compiled calls.

    Subclass it to feed a fitting loop from anywhere. ``pm.fit`` (and ``refine``) find the feeds
    of the fed variables its step function reads, call :meth:`start` before the loop,
    :meth:`before_step` before every compiled step, and :meth:`stop` after it, however it ends.

    Attributes
    ----------
    name : str
        Names the feed in messages.
    """

    name: str

    @property
    @abstractmethod
    def shared_variables(self) -> tuple[FedSharedVariable, ...]:
        """The variables this feed fills."""

    @property
    def num_rows(self) -> int | None:
        """Rows of the dataset the batches are drawn from, if known (a likelihood's total_size)."""
        return None

    def start(self, *, restart: bool, random_seed: int | None) -> None:
        """Prepare to feed a loop.

        Parameters
        ----------
        restart : bool
            True for a new fit, which starts the data over as a fit reseeds its random
            generators; False for a loop that continues the last one (``refine``).
        random_seed : int, optional
            Drawn from the fit's own random state, for feeds that shuffle without a seed of
            their own.
        """

    @abstractmethod
    def before_step(self) -> None:
        """Put the next batch into the variables; raise ``StopIteration`` when there is none."""

    def stop(self) -> None:
        """Release what :meth:`start` took (threads, files): the loop has ended."""

    def progress_columns(self) -> tuple[ProgressColumn, ...]:
        """Columns the loop's progress bar shows for this feed."""
        return ()

    def refusal_advice(self) -> str:
        """What to use instead, for the error of a computation that would see one batch."""
        return "Evaluate the model with the loop that feeds this data, or on data in memory."


def data_feeds_in(variables: Iterable[Variable]) -> list[DataFeed]:
    """The feeds of the fed variables among ``variables`` and their ancestors, in order."""
    feeds: dict[int, DataFeed] = {}
    for var in ancestors(list(variables)):
        if isinstance(var, FedSharedVariable):
            feeds.setdefault(id(var.data_feed), var.data_feed)
    return list(feeds.values())


_feeding = contextvars.ContextVar("pymc_feeding_data", default=False)


@contextlib.contextmanager
def feeding_data() -> Iterator[None]:
    """Allow the functions compiled inside to read fed data: the caller feeds it.

    Fitting loops compile their step function inside this block, and then drive the feeds of its
    inputs with :class:`DataFeeds`.
    """
    token = _feeding.set(True)
    try:
        yield
    finally:
        _feeding.reset(token)


def _graph_variables(items: Iterable[Any]) -> list[Variable]:
    """Variables of the inputs, outputs or updates given to a compile call (``In``/``Out`` too)."""
    found = []
    for item in items:
        if isinstance(item, tuple | list):
            found.extend(_graph_variables(item))
        elif isinstance(item, Variable):
            found.append(item)
        elif isinstance(getattr(item, "variable", None), Variable):  # pytensor.In / Out
            found.append(item.variable)
    return found


def _entry_point() -> str:
    """The outermost PyMC or pymc-extras function on the stack: what the user called."""
    frame = sys._getframe(1)
    outermost = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] in ("pymc", "pymc_extras") and not module.startswith(
            "pymc.data_feed"
        ):
            outermost = f"{frame.f_code.co_name} ({module})"
        frame = frame.f_back  # type: ignore[assignment]
    return outermost or "This computation"


def refuse_fed_data(outputs: Any, updates: Any = (), inputs: Any = ()) -> None:
    """Raise unless the graph of a function about to be compiled reads no fed data.

    :func:`pymc.pytensorf.compile` calls this on every function it compiles, so every way of
    evaluating a model (sampling, optimisation, predictive draws, log-likelihoods, ...) refuses a
    model that observes fed data, except fitting loops that feed it (:func:`feeding_data`).

    Raises
    ------
    StreamingNotSupportedError
        Naming what was called, the feeds, and what to use instead.
    """
    if _feeding.get():
        return
    if isinstance(updates, dict):
        updates = list(updates.values())
    variables = _graph_variables([outputs, updates, inputs])
    feeds = data_feeds_in(variables)
    if not feeds:
        return
    names = ", ".join(repr(feed.name) for feed in feeds)
    raise StreamingNotSupportedError(
        f"{_entry_point()} would evaluate the model on the one batch that sits in the buffer of "
        f"its streamed data ({names}), as if that batch were the whole dataset. "
        f"{feeds[0].refusal_advice()}"
    )


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
    A fitting loop uses it as ``Inference.fit`` does:

    .. code-block:: python

        with feeding_data():
            step = compile([], loss, updates=updates)
        feeds = DataFeeds(step, restart=True, rng=rng)
        with feeds:
            for _ in range(n):
                feeds.before_step()
                step()
    """

    def __init__(self, function=None, *, restart: bool = True, rng=None):
        maker = getattr(function, "maker", None)
        variables = [] if maker is None else [inp.variable for inp in maker.inputs]
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

    def __enter__(self) -> "DataFeeds":
        for feed, seed in zip(self.feeds, self._seeds()):
            try:
                feed.start(restart=self.restart, random_seed=seed)
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise
            self._started.append(feed)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        started, self._started = self._started, []
        for feed in reversed(started):
            feed.stop()

    def before_step(self) -> None:
        """Put the next batch into every feed's variables (``StopIteration`` at the end)."""
        for feed in self.feeds:
            feed.before_step()

    def progress_columns(self) -> tuple[ProgressColumn, ...]:
        return tuple(column for feed in self.feeds for column in feed.progress_columns())

    def __bool__(self) -> bool:
        return bool(self.feeds)

    def __iter__(self) -> Iterator[DataFeed]:
        return iter(self.feeds)


def fed_total_size(rv: Variable, observed: Any, total_size: Any, name: str) -> Any:
    """``total_size`` for an observed variable, inferred in rows when its data is fed.

    ``Model.register_rv`` calls this before its own ``pm.Minibatch`` checks. It returns
    ``total_size`` unchanged for other data.

    Raises
    ------
    SourceDataError
        If the variable's parameters and observations read different feeds, or a feed and an
        in-memory ``pm.Minibatch``, whose rows would not match; if a feed cannot tell its number
        of rows and no ``total_size`` is given; or if a given ``total_size`` disagrees with the
        feed's.
    """
    if not isinstance(observed, Variable):
        return total_size
    graphs = [observed, *rv.owner.inputs] if rv.owner is not None else [observed]
    feeds = data_feeds_in(graphs)
    if not feeds:
        return total_size
    _refuse_mixed_minibatches(graphs, name)
    if len(feeds) > 1:
        raise SourceDataError(
            f"Observed variable {name!r} reads {len(feeds)} separate data feeds "
            f"({', '.join(repr(feed.name) for feed in feeds)}), which draw their rows "
            "independently, so its observations and covariates would not belong to the same "
            "rows. Read the data that belongs together from one feed: for streaming minibatches, "
            "pass all arrays to one pm.Minibatch(X, y, ..., streaming=True) call."
        )
    [feed] = feeds
    given = total_size[0] if isinstance(total_size, Sequence) else total_size
    rows = feed.num_rows
    if rows is None:
        if given is None:
            raise SourceDataError(
                f"Observed variable {name!r} reads the data feed {feed.name!r}, which cannot tell "
                "its number of rows, so the likelihood cannot be scaled to the dataset. Pass "
                "total_size=<rows in the dataset>."
            )
        declare = getattr(feed, "declare_num_rows", None)
        if declare is not None:
            declare(int(given))
        return total_size
    if given is None:
        return rows
    if given != rows:
        raise SourceDataError(
            f"Observed variable {name!r} has total_size={given}, but its data feed "
            f"{feed.name!r} has {rows} rows. Leave total_size out: it is inferred from the feed."
        )
    return total_size


def _refuse_mixed_minibatches(graphs: list[Variable], name: str) -> None:
    """Fed data and an in-memory ``pm.Minibatch`` draw different rows: refuse them together."""
    from pymc.data import MinibatchOp  # pymc.data imports this module's users

    if any(v.owner is not None and isinstance(v.owner.op, MinibatchOp) for v in ancestors(graphs)):
        raise SourceDataError(
            f"Observed variable {name!r} reads both streamed data and an in-memory pm.Minibatch, "
            "which draw their rows independently, so its rows would not match. Stream all of its "
            "data: pass every array to one pm.Minibatch(..., streaming=True) call."
        )
