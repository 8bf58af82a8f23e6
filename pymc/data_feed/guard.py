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
import sys

from collections.abc import Iterable, Iterator
from typing import Any

from pytensor.graph.basic import Variable

from pymc.data_feed.feeds import data_feeds_in
from pymc.exceptions import StreamingNotSupportedError

__all__ = ["feeding_data", "refuse_fed_data"]


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
