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

``pm.Minibatch(source, batch_size=..., streaming=True)`` returns shared buffers that ``pm.fit``
fills with a fresh batch before every step, read ahead in a background thread. Sources here are
numpy arrays, memmaps and iterables of chunks; pymc-extras adds readers of files (Parquet,
Arrow IPC, CSV, .npy, HDF5, Zarr) and of Dask collections. Attributes are imported on first
use, so ``import pymc`` imports nothing of this package but its name.
"""

import importlib

__all__ = [
    "DEFAULT_PREFETCH",
    "DEFAULT_SHUFFLE_BUFFER",
    "ArraySource",
    "BlockSource",
    "InvalidSourceError",
    "IterableSource",
    "Source",
    "SourceDataError",
    "Stream",
    "StreamBuffer",
    "StreamingError",
    "StreamingNotSupportedError",
    "ZippedSource",
    "as_source",
    "get_stream",
    "register_source",
    "streaming_minibatch",
    "streams_in",
]

_HOMES = {
    "DEFAULT_PREFETCH": "pymc.streaming.minibatch",
    "streaming_minibatch": "pymc.streaming.minibatch",
    "DEFAULT_SHUFFLE_BUFFER": "pymc.streaming.batching",
    "ArraySource": "pymc.streaming.sources",
    "BlockSource": "pymc.streaming.sources",
    "IterableSource": "pymc.streaming.sources",
    "Source": "pymc.streaming.sources",
    "ZippedSource": "pymc.streaming.sources",
    "as_source": "pymc.streaming.sources",
    "register_source": "pymc.streaming.sources",
    "Stream": "pymc.streaming.stream",
    "StreamBuffer": "pymc.streaming.stream",
    "get_stream": "pymc.streaming.stream",
    "streams_in": "pymc.streaming.stream",
    "InvalidSourceError": "pymc.exceptions",
    "SourceDataError": "pymc.exceptions",
    "StreamingError": "pymc.exceptions",
    "StreamingNotSupportedError": "pymc.exceptions",
}

# fork-only: begin
# The readers lived here before they moved to pymc-extras, where PyMC's maintainers want the
# streaming data layer to grow. Code written against the old names keeps working, with a warning
# that names the new import.
_MOVED = frozenset(
    {
        "ArrowIPCSource",
        "CSVSource",
        "DaskSource",
        "FeatherSource",
        "HDF5Source",
        "NpySource",
        "ParquetSource",
        "ZarrSource",
    }
)


def _moved(name: str):
    import warnings

    new = f"from pymc_extras.streaming import {name}"
    try:
        module = importlib.import_module("pymc_extras.streaming")
    except ModuleNotFoundError as error:
        raise AttributeError(
            f"pymc.streaming.{name} moved to pymc-extras: install pymc-extras and use `{new}`."
        ) from error
    warnings.warn(
        f"pymc.streaming.{name} moved to pymc-extras; use `{new}`.", FutureWarning, stacklevel=3
    )
    return getattr(module, name)


# fork-only: end


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    if name in _MOVED:  # fork-only
        return _moved(name)  # fork-only
    raise AttributeError(f"module 'pymc.streaming' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
