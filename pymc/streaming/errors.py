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
"""Exceptions raised by streaming minibatches."""

from pymc.exceptions import SamplingError

__all__ = [
    "InvalidSourceError",
    "SourceDataError",
    "StreamingError",
    "StreamingNotSupportedError",
]


class StreamingError(Exception):
    """Base class of the errors raised by :mod:`pymc.streaming`."""


class InvalidSourceError(StreamingError, TypeError):
    """The object given as a streaming source is not something we can read batches from."""


class SourceDataError(StreamingError, ValueError):
    """The data a source yields cannot be used: ragged, misaligned, non-numeric, empty, NaN."""


class StreamingNotSupportedError(StreamingError, SamplingError, NotImplementedError):
    """An inference method that needs the full dataset in memory met a streaming minibatch."""
