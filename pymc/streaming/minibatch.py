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
"""``pm.Minibatch(..., streaming=True)``: minibatches read from a source, not held in memory."""

import itertools
import math
import numbers

import numpy as np

from pymc.data_feed.memory import check_memory
from pymc.exceptions import SourceDataError
from pymc.streaming.batching import DEFAULT_SHUFFLE_BUFFER
from pymc.streaming.sources import MAX_ROWS, as_source
from pymc.streaming.stream import Stream, StreamBuffer

__all__ = ["DEFAULT_PREFETCH", "check_streaming_options", "streaming_minibatch"]

DEFAULT_PREFETCH = 16
"""Batches prepared ahead by the background reader: 16 × 256 rows × 10 float64 ≈ 330 kB."""

_stream_numbers = itertools.count()


def _check_num_rows(source) -> int | None:
    """The source's row count as a Python int; refuse one that is not a count, or no rows."""
    rows = source.num_rows
    if rows is None:
        return None
    if isinstance(rows, bool) or not isinstance(rows, numbers.Integral) or rows < 0:
        raise SourceDataError(
            f"The source ({source!r}) reports num_rows={rows!r}, which is not a number of rows. "
            "A source's num_rows must be a non-negative integer, or None when unknown."
        )
    if rows == 0:
        raise SourceDataError(
            f"The source ({source!r}) has no rows. Check the files or data it reads."
        )
    if int(rows) > MAX_ROWS:
        raise SourceDataError(
            f"The source ({source!r}) reports num_rows={rows:,}, more than 2**53 = "
            f"{MAX_ROWS:,}: the likelihood's scale, num_rows / batch_size, would lose "
            "precision in float64 (or overflow int64 and change sign). No real dataset is that "
            "large: the count the source read or was given is corrupt or crafted."
        )
    source.num_rows = int(rows)  # numpy integers too, which total_size cannot take
    return source.num_rows


def _check_count(name: str, value, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}.")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"{name} must be at most {maximum:,}, got {value:,}.")
    return int(value)


def _seed_of(random_seed) -> int | None:
    if random_seed is None:
        return None
    if isinstance(random_seed, np.random.Generator):
        return int(random_seed.integers(2**63))
    if isinstance(random_seed, np.random.SeedSequence):
        return int(random_seed.generate_state(1, np.uint64)[0])
    return _check_count("random_seed", random_seed, minimum=0)


def streaming_minibatch(
    *sources,
    batch_size: int,
    total_size: int | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    random_seed: int | np.random.Generator | None = None,
    prefetch: int | None = None,
    check_finite: bool = False,
) -> StreamBuffer | list[StreamBuffer]:
    """Minibatches streamed from a source, refreshed by ``pm.fit`` before every step.

    Reached as ``pm.Minibatch(*sources, batch_size=..., streaming=True, ...)``. Returns one
    shared variable per output of the sources (a single one when there is one), holding
    ``batch_size`` rows at every step; like ``pm.Data``, its type leaves the number of rows
    open. Used as observed data, the likelihood is scaled by ``total_size / batch_size`` with
    ``total_size`` inferred in rows.

    Parameters
    ----------
    *sources
        One source yielding all outputs, or several aligned sources yielding one or more each:

        - numpy arrays and ``np.memmap`` (also pandas and pyarrow tables): the row count is
          known, and blocks are read in a random order, never loading a memmap whole;
        - an iterable of chunks, where a chunk is an array, a tuple of arrays (one per output),
          a pandas DataFrame, or a pyarrow RecordBatch or Table, of any number of rows;
        - a zero-argument function returning a fresh iterator, or a re-iterable (list, class with
          ``__iter__``): read again every epoch;
        - an iterator or generator object: read once; ``pm.fit`` ends, with a logged message,
          when it has no full batch left.
    batch_size : int
        Rows per step. Every step sees exactly this many rows; a batch runs on into the next
        epoch rather than coming up short.
    total_size : int, optional
        Rows in the whole dataset. Needed only when the source cannot tell (iterables other
        than lists); if it can, a different value is an error.
    shuffle_buffer : int, default 65_536
        Rows shuffled together. Memory grows with it (65,536 rows of 10 float64 features are
        5 MB); so does the quality of the shuffle. A random-access source fills the buffer with
        16 blocks taken from random places, so with 10,000,000 rows and the default every batch
        mixes rows from 16 places anywhere in the data, and a dataset smaller than the buffer
        is shuffled completely each epoch. Other sources shuffle consecutive rows only: a
        1,000-row buffer over data sorted by outcome still gives batches of nearly equal
        outcomes, so shuffle such data on disk or use a larger buffer. 0 keeps the source's order.
    random_seed : int, optional
        Seeds the shuffles. Without it, each ``pm.fit`` derives the stream's seed from its own
        ``random_seed``, so a seeded fit is reproducible.
    prefetch : int, optional
        Batches prepared ahead by a background thread, overlapping reading with the gradient
        step; the thread also reads one shuffle window ahead. Memory grows with
        ``prefetch × batch bytes`` plus that window. 0 reads in the main thread, between
        steps, 16 batches at a time. The default is 0 for numpy arrays in memory, where a batch
        is one gather of about 10 µs and a thread would only compete with the step for
        Python's GIL, and 16 for every other source, whose reading (files, decoding, user
        generators) the thread hides.
    check_finite : bool, default False
        Raise if the data holds NaN or infinite values, at the cost of one more pass over each
        batch's floats in the reader. Off, NaNs reach the model and usually show as a NaN loss.

    Returns
    -------
    StreamBuffer or list of StreamBuffer
        Shared variables (:class:`pymc.streaming.StreamBuffer`) that ``pm.fit`` refreshes.

    Raises
    ------
    InvalidSourceError
        If a source is not something batches can be read from.
    SourceDataError
        If the data is ragged, non-numeric, empty, misaligned, or has fewer rows than a batch.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> X, y = np.random.normal(size=(10_000, 3)), np.random.normal(size=10_000)
    >>> with pm.Model():
    ...     X_mb, y_mb = pm.Minibatch(X, y, batch_size=100, streaming=True, random_seed=1)
    ...     beta = pm.Normal("beta", 0, 1, shape=3)
    ...     obs = pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    >>> obs.owner.inputs[1].eval()  # total_size, inferred in rows
    array(10000)
    """
    batch_size = _check_count("batch_size", batch_size, minimum=1)
    shuffle_buffer = _check_count("shuffle_buffer", shuffle_buffer, minimum=0)
    if prefetch is not None:
        prefetch = _check_count("prefetch", prefetch, minimum=0)
    if total_size is not None:
        # Above 2**53 rows the scale total_size / batch_size loses precision in float64.
        total_size = _check_count("total_size", total_size, minimum=1, maximum=MAX_ROWS)
    seed = _seed_of(random_seed)
    source = as_source(*sources)
    _check_num_rows(source)
    if source.num_rows is not None and total_size is not None and total_size != source.num_rows:
        raise SourceDataError(
            f"total_size={total_size} but the source has {source.num_rows} rows. Leave "
            "total_size out: it is inferred from the source."
        )
    if prefetch is None:
        prefetch = 0 if source.random_access and source.gathers_rows else DEFAULT_PREFETCH
    rows = source.num_rows if source.num_rows is not None else total_size
    if rows is not None and batch_size > rows:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {rows} rows of the source. Use a "
            "batch_size of at most the number of rows."
        )
    row_bytes = sum(spec.dtype.itemsize * math.prod(spec.row_shape) for spec in source.specs)
    check_memory(
        "prefetch",
        prefetch,
        prefetch * batch_size * row_bytes,
        f"{prefetch:,} batches of {batch_size:,} rows ahead of the fit",
        "Use a smaller prefetch: the default, 16, keeps the reader ahead of the fit.",
    )
    window_rows = min(shuffle_buffer, rows if rows is not None else shuffle_buffer)
    check_memory(
        "shuffle_buffer",
        shuffle_buffer,
        window_rows * (8 if source.gathers_rows else row_bytes),
        f"a window of {window_rows:,} rows",
        "Use a smaller shuffle_buffer, or shuffle the data on disk once.",
    )
    stream = Stream(
        source,
        batch_size=batch_size,
        shuffle_buffer=shuffle_buffer,
        seed=seed,
        prefetch=prefetch,
        total_size=total_size,
        check_finite=bool(check_finite),
        name=f"stream{next(_stream_numbers)}",
    )
    buffers = list(stream.buffers)
    return buffers if len(buffers) > 1 else buffers[0]


_OPTIONS = ("total_size", "shuffle_buffer", "random_seed", "prefetch", "check_finite")


def check_streaming_options(streaming: bool, options: dict) -> None:
    """Refuse unknown keywords, and streaming keywords given to the in-memory ``pm.Minibatch``.

    Raises
    ------
    TypeError
        Naming the keywords that do not apply and those that do.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(
            f"pm.Minibatch got unexpected keyword(s) {', '.join(map(repr, unknown))}. With "
            f"streaming=True it takes batch_size and {', '.join(_OPTIONS)}."
        )
    if not streaming:
        raise TypeError(
            f"pm.Minibatch got {', '.join(sorted(options))}, which only apply with "
            "streaming=True. Pass streaming=True to read batches from a source, or drop them."
        )
