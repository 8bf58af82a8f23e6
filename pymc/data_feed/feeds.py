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
"""What fed data is: shared variables that a :class:`DataFeed` fills between compiled calls."""

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors
from pytensor.tensor.sharedvar import TensorSharedVariable
from rich.progress import ProgressColumn

__all__ = ["DataFeed", "FedSharedVariable", "data_feeds_in", "streamed_observations"]


class FedSharedVariable(TensorSharedVariable):
    """A shared variable whose value a :class:`DataFeed` replaces between compiled calls.

    Its value is one batch of a larger dataset. A model can observe it like any data, and a
    fitting loop that feeds it (``pm.fit``) refreshes it before every step; every other compiled
    function that reads its values refuses it (see :func:`~pymc.data_feed.refuse_fed_data`).

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
    of the fed variables its step function reads (:class:`~pymc.data_feed.DataFeeds`), call
    :meth:`start` before the loop, :meth:`before_step` before every compiled step, and
    :meth:`stop` after it, however it ends. A loop that runs many steps per compiled call first
    calls :meth:`expect_blocks`, then asks for a block of batches per call
    (:meth:`before_block`); by default that calls :meth:`before_step` once per batch.

    Parameters
    ----------
    name : str
        Names the feed in messages.
    """

    name: str = "data feed"
    _cut_short: BaseException | None = None
    """What ended the last block early (:meth:`before_block`), raised at its next call."""

    def __init__(self, name: str):
        self.name = name

    @property
    @abstractmethod
    def shared_variables(self) -> tuple[FedSharedVariable, ...]:
        """The variables this feed fills."""

    @property
    def num_rows(self) -> int | None:
        """Rows of the dataset the batches are drawn from, if known (a likelihood's total_size)."""
        return None

    def declare_num_rows(self, rows: int) -> None:
        """Learn the rows of the dataset from a likelihood's ``total_size``.

        Called when a model observes this feed's data with ``total_size`` while
        :attr:`num_rows` is None. The default does nothing.
        """

    def start(self, *, restart: bool, random_seed: int | None) -> None:
        """Prepare to feed a loop. Overrides call ``super().start(...)``.

        Parameters
        ----------
        restart : bool
            True for a new fit, which starts the data over as a fit reseeds its random
            generators; False for a loop that continues the last one (``refine``).
        random_seed : int, optional
            Drawn from the fit's own random state, for feeds that shuffle without a seed of
            their own.
        """
        self._cut_short = None

    @abstractmethod
    def before_step(self) -> None:
        """Put the next batch into the variables; raise ``StopIteration`` when there is none.

        Once it has raised ``StopIteration``, it raises it again when called again.
        """

    def expect_blocks(self, steps: int | None) -> None:
        """Learn, before :meth:`start`, that the loop asks for blocks of ``steps`` batches.

        None: the loop asks for one batch per step (:meth:`before_step`). A feed that reads
        ahead can then prepare whole blocks; the default does nothing.
        """

    def before_block(self, steps: int, blocks: Mapping[FedSharedVariable, SharedVariable]) -> int:
        """Put the next ``steps`` batches into ``blocks``; return how many there were.

        A loop that runs many steps per compiled call calls this instead of
        :meth:`before_step`, once per call.

        Parameters
        ----------
        steps : int
            Batches wanted.
        blocks : dict
            For each of this feed's variables that the step reads, the shared variable whose
            value the compiled call reads its batches from: an array of shape
            ``(batches, *batch shape)`` of the variable's dtype, batch ``j`` in row ``j``.

        Returns
        -------
        int
            The batches put in: ``steps``, or fewer (at least one) when the data ends or fails
            partway. The next call then raises ``StopIteration`` or the error.

        Raises
        ------
        StopIteration
            When there is no batch left.

        Notes
        -----
        The default calls :meth:`before_step` ``steps`` times and copies each variable's value
        into a new array after each call. Override it to hand over the batches without copying.
        """
        if self._cut_short is not None:
            error, self._cut_short = self._cut_short, None
            raise error
        stacked: dict[FedSharedVariable, np.ndarray] = {}
        done = 0
        while done < steps:
            try:
                self.before_step()
            except Exception as raised:  # StopIteration too: after the batches before it
                if not done:
                    raise
                self._cut_short = raised
                break
            for var in blocks:
                value = np.asarray(var.get_value(borrow=True))
                if var not in stacked:
                    stacked[var] = np.empty((steps, *value.shape), dtype=var.dtype)
                elif value.shape != stacked[var].shape[1:]:
                    raise ValueError(
                        f"Data feed {self.name!r} put a batch of shape {value.shape} into "
                        f"{var.name or var}, after one of shape {stacked[var].shape[1:]}; steps "
                        "run many per call need batches of one shape. Pass steps_per_call=1 to "
                        "the fit to run one step per call."
                    )
                stacked[var][done] = value
            done += 1
        for var, block in blocks.items():
            block.set_value(stacked[var][:done], borrow=True)
        return done

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


def streamed_observations(model: Any) -> dict[str, str]:
    """Attributes for a model's ``observed_data`` group: which observations are fed, if any.

    A fed observation holds one batch of its data, so ``observed_data`` leaves it out; the
    attribute ``streamed_observations`` names those left out (comma-separated), and is absent
    when there are none.
    """
    names = [
        obs.name
        for obs in model.observed_RVs
        if (value := model.rvs_to_values.get(obs)) is not None and data_feeds_in([value])
    ]
    return {"streamed_observations": ", ".join(names)} if names else {}
