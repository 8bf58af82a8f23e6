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
import numbers
import sys

from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pytensor.graph.basic import Variable

from pymc.data_feed.feeds import data_feeds_in
from pymc.exceptions import StreamingNotSupportedError

__all__ = ["StepsPerCall", "feeding_data", "refuse_fed_data", "requested_steps_per_call"]


StepsPerCall = int | Literal["auto"] | None
"""What a fitting loop asks of :func:`feeding_data`: steps per compiled call, ``"auto"``, or None."""

_feeding: contextvars.ContextVar[tuple[StepsPerCall] | None] = contextvars.ContextVar(
    "pymc_feeding_data", default=None
)


@contextlib.contextmanager
def feeding_data(
    *, steps_per_call: StepsPerCall = None, callbacks: Iterable[Any] = ()
) -> Iterator[None]:
    """Allow the functions compiled inside to read fed data: the caller feeds it.

    Fitting loops compile their step function inside this block, and then drive the feeds of its
    inputs with :class:`DataFeeds`.

    Parameters
    ----------
    steps_per_call : int, "auto" or None, default None
        Ask :func:`pymc.pytensorf.compile` for a training step that runs this many steps per
        call: a graph reading fed data, compiled with ``updates``, then becomes a
        :class:`~pymc.data_feed.BlockFunction` over blocks of that many batches (see
        :func:`compile_blocks`). ``"auto"`` lets it choose from the backend and the bytes of a
        batch; None and 1 compile one step per call, as PyMC does without feeds.
    callbacks : iterable, optional
        The loop's callbacks. Within a block, callbacks see the parameters after the whole
        block; a callback that needs them after every step (iterate averaging, say) says so
        with a true ``needs_every_step`` attribute, and ``"auto"`` then means one step per call.

    Raises
    ------
    ValueError
        If ``steps_per_call`` is neither a positive integer, ``"auto"``, nor None.
    """
    if steps_per_call is not None and steps_per_call != "auto":
        if isinstance(steps_per_call, bool) or not isinstance(steps_per_call, numbers.Integral):
            raise ValueError(
                f'steps_per_call must be a positive integer, "auto" or None, got {steps_per_call!r}.'
            )
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be at least 1, got {steps_per_call}.")
        steps_per_call = int(steps_per_call)
    elif steps_per_call == "auto" and any(getattr(c, "needs_every_step", False) for c in callbacks):
        steps_per_call = 1
    token = _feeding.set((steps_per_call,))
    try:
        yield
    finally:
        _feeding.reset(token)


def requested_steps_per_call() -> StepsPerCall:
    """The ``steps_per_call`` of the innermost :func:`feeding_data` block (None outside one)."""
    scope = _feeding.get()
    return None if scope is None else scope[0]


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
    if _feeding.get() is not None:
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
