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
"""The guard: functions compiled on fed data are refused unless the caller feeds the data."""

import contextlib
import contextvars

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from pytensor.graph.basic import Variable
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.shape import Shape, Shape_i

from pymc.data_feed.feeds import DataFeed, FedSharedVariable
from pymc.exceptions import StreamingNotSupportedError

__all__ = ["fed_values_read_by", "feeding_data", "refuse_fed_data"]

_feeding: contextvars.ContextVar[bool] = contextvars.ContextVar("pymc_feeding_data", default=False)


@contextlib.contextmanager
def feeding_data() -> Iterator[None]:
    """Allow the functions compiled inside to read fed data: the caller feeds it.

    Fitting loops compile their step function inside this block, and then drive the feeds of its
    inputs with :class:`~pymc.data_feed.DataFeeds`. Nothing else changes: ``compile`` returns
    the function it returns outside the block.
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


def values_read_by(graphs: Iterable[Variable]) -> set[Variable]:
    """The variables whose values the ``graphs`` read: their ancestors, but for shapes.

    A variable reached only through its shape (``Shape``, ``Shape_i``), or through the shape of
    elementwise functions of it (a cast, say, whose output has its input's shape), is not read
    for its values: ``pm.Normal("b", shape=X_mb.shape[1])`` computes nothing on ``X_mb``'s rows.
    The shape of any other result counts as reading what it is computed from, since only its
    values may say how long it is (``pt.nonzero(x)``).
    """
    read: set[Variable] = set()
    seen: set[tuple[Variable, bool]] = set()
    stack = [(var, True) for var in graphs]
    while stack:
        var, for_values = stack.pop()
        if (var, for_values) in seen:
            continue
        seen.add((var, for_values))
        if for_values:
            read.add(var)
        node = var.owner
        if node is None:
            continue
        if isinstance(node.op, Shape | Shape_i):
            for_values = False
        elif not for_values and not isinstance(node.op, Elemwise | DimShuffle):
            for_values = True  # a shape only its values can give
        stack.extend((inp, for_values) for inp in node.inputs)
    return read


def fed_values_read_by(graphs: Iterable[Variable]) -> list[DataFeed]:
    """The feeds whose data the ``graphs`` read for its values (:func:`values_read_by`)."""
    feeds: dict[int, DataFeed] = {}
    for var in values_read_by(graphs):
        if isinstance(var, FedSharedVariable):
            feeds.setdefault(id(var.data_feed), var.data_feed)
    return list(feeds.values())


class _RefusedOnOneBatch(StreamingNotSupportedError):
    """The guard's refusal, naming the function the user called.

    The name is read from the exception's own traceback when the message is shown: the
    outermost PyMC or pymc-extras function it passed through.
    """

    def __str__(self) -> str:
        return f"{_entry_point(self.__traceback__)} {self.args[0]}"


def _entry_point(traceback: TracebackType | None) -> str:
    """The outermost PyMC or pymc-extras function in ``traceback``: what the user called."""
    outermost = None
    while traceback is not None:
        frame = traceback.tb_frame
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] in ("pymc", "pymc_extras") and not module.startswith(
            "pymc.data_feed"
        ):
            outermost = outermost or f"{frame.f_code.co_name} ({module})"
        traceback = traceback.tb_next
    return outermost or "This computation"


def refuse_fed_data(outputs: Any, updates: Any = (), inputs: Any = ()) -> None:
    """Raise unless the graph of a function about to be compiled reads no fed data.

    :func:`pymc.pytensorf.compile` calls this on every function it compiles, so every way of
    evaluating a model (sampling, optimisation, predictive draws, log-likelihoods, ...) refuses a
    model that observes fed data, except fitting loops that feed it (:func:`feeding_data`). A
    graph that reads fed variables only through their shape is allowed
    (:func:`fed_values_read_by`). What is not compiled by ``compile`` (``model.logp().eval()``,
    a ``pytensor.function`` of one's own) is not guarded.

    Raises
    ------
    StreamingNotSupportedError
        Naming what was called, the feeds, and what to use instead.
    """
    if _feeding.get():
        return
    if isinstance(updates, dict):
        updates = list(updates.values())
    feeds = fed_values_read_by(_graph_variables([outputs, updates, inputs]))
    if not feeds:
        return
    names = ", ".join(repr(feed.name) for feed in feeds)
    raise _RefusedOnOneBatch(
        f"would evaluate the model on the one batch that sits in the buffer of its streamed data "
        f"({names}), as if that batch were the whole dataset. {feeds[0].refusal_advice()}"
    )
