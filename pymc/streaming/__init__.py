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
"""Streaming minibatches: fit models on data larger than memory with ``pm.fit``.

``pm.Minibatch(source, batch_size=..., streaming=True)`` returns tensors backed by shared
buffers; ``pm.fit`` puts a fresh batch into them before every step, read ahead in a background
thread. See ``docs/streaming.md`` for the user guide.
"""

from pymc.streaming.array_files import HDF5Source, NpySource, ZarrSource
from pymc.streaming.arrow_files import ArrowIPCSource, CSVSource, FeatherSource, ParquetSource
from pymc.streaming.batching import DEFAULT_SHUFFLE_BUFFER
from pymc.streaming.dask_source import DaskSource
from pymc.streaming.errors import (
    InvalidSourceError,
    SourceDataError,
    StreamingError,
    StreamingNotSupportedError,
)
from pymc.streaming.minibatch import DEFAULT_PREFETCH, streaming_minibatch
from pymc.streaming.sources import (
    ArraySource,
    BlockSource,
    IterableSource,
    Source,
    ZippedSource,
    as_source,
)
from pymc.streaming.stream import Stream, StreamBuffer, get_stream, streams_in

__all__ = [
    "DEFAULT_PREFETCH",
    "DEFAULT_SHUFFLE_BUFFER",
    "ArraySource",
    "ArrowIPCSource",
    "BlockSource",
    "CSVSource",
    "DaskSource",
    "FeatherSource",
    "HDF5Source",
    "InvalidSourceError",
    "IterableSource",
    "NpySource",
    "ParquetSource",
    "Source",
    "SourceDataError",
    "Stream",
    "StreamBuffer",
    "StreamingError",
    "StreamingNotSupportedError",
    "ZarrSource",
    "ZippedSource",
    "as_source",
    "get_stream",
    "streaming_minibatch",
    "streams_in",
]
