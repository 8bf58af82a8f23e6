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
(:func:`feeding_data`). :class:`DataFeeds` is the hook the fitting loops call; a step function
that runs many steps per call is a :class:`MultiStepFunction`.
"""

from pymc.data_feed.feeds import (
    DataFeed,
    FedSharedVariable,
    data_feeds_in,
    streamed_observations,
)
from pymc.data_feed.guard import feeding_data
from pymc.data_feed.loop import DataFeeds, MultiStepFunction

__all__ = [
    "DataFeed",
    "DataFeeds",
    "FedSharedVariable",
    "MultiStepFunction",
    "data_feeds_in",
    "feeding_data",
    "streamed_observations",
]
