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
"""``total_size`` of an observed variable whose data is fed, inferred in rows."""

from collections.abc import Sequence
from typing import Any

from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

from pymc.data_feed.feeds import data_feeds_in
from pymc.exceptions import SourceDataError

__all__ = ["fed_total_size"]


def fed_total_size(rv: Any, observed: Any, total_size: Any, name: str) -> Any:
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
        feed.declare_num_rows(int(given))
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
