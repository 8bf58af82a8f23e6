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
"""Per-row results of a pass written out in chunks, and statistics of whole datasets in one pass."""

import contextlib
import os

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import numpy as np

from pymc.exceptions import SourceDataError

from pymc_extras.streaming.readers.optional import import_optional

__all__: list[str] = []  # helpers of the package: imported by name, not exported

PARQUET_ROW_GROUP_ROWS = 65_536
"""Rows per row group of the Parquet files written: memory holds one row group of the columns
being written (about 5 MB for ten float64 columns)."""

ZARR_FLUSH_BYTES = 1 << 26
"""Bytes of draws held before they are appended to a Zarr store (64 MiB): fewer, larger writes
for more memory."""

QUANTILE_BINS = 4_096
"""Bins of the histograms that estimate quantiles of a whole dataset in one pass. Each draw
and the observations have their own counts on a grid they share: 32 KiB per draw."""


def quantile_name(q: float) -> str:
    """Column and coordinate name of a quantile: ``q0.05`` for 0.05."""
    return f"q{q:g}"


def check_quantiles(quantiles, what: str) -> tuple[float, ...]:
    values = tuple(float(q) for q in np.atleast_1d(quantiles))
    if not values or any(not 0 <= q <= 1 for q in values):
        raise ValueError(f"{what} must be probabilities between 0 and 1, got {quantiles!r}.")
    return values


def _flat(name: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """(draws, rows, *shape) as columns of (draws, rows), one per element of a row."""
    if values.ndim == 2:
        return {name: values}
    flat = values.reshape(*values.shape[:2], -1)
    return {
        f"{name}[{','.join(map(str, index))}]": flat[..., k]
        for k, index in enumerate(np.ndindex(*values.shape[2:]))
    }


def row_summaries(
    draws: Mapping[str, np.ndarray],
    quantiles: Sequence[float],
    observed: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-row summaries of draws of shape (draws, rows, ...): mean, sd and quantiles.

    With observations, also the observed value and its probability integral transform
    (``pit``): the share of draws below it, plus half the share equal to it (so that a
    discrete outcome gets the middle of its jump), which is uniform when the model is
    calibrated.
    """
    columns: dict[str, np.ndarray] = {}
    for name, values in draws.items():
        for column, value in _flat(name, values).items():
            columns[f"{column}_mean"] = value.mean(axis=0)
            columns[f"{column}_sd"] = value.std(axis=0, ddof=1 if len(value) > 1 else 0)
            for q, row_q in zip(quantiles, np.quantile(value, quantiles, axis=0)):
                columns[f"{column}_{quantile_name(q)}"] = row_q
        if observed is not None and name in observed:
            flat_obs = _flat(name, np.asarray(observed[name])[None])
            for column, value in _flat(name, values).items():
                y = flat_obs[column][0]
                below = (value < y).mean(axis=0)
                equal = (value == y).mean(axis=0)
                columns[f"{column}_observed"] = y
                columns[f"{column}_pit"] = below + 0.5 * equal
    return columns


def output_format(path) -> str:
    """The format an output's suffix names: ``"parquet"`` or ``"zarr"``.

    Where it is written, and whether it may replace what is there, is
    :func:`pymc_extras.streaming.workflow.output_files.check_output_path`'s business.
    """
    kind = Path(path).suffix.lower().lstrip(".")
    if kind not in ("parquet", "zarr"):
        raise ValueError(
            f"Cannot tell the format of {str(path)!r}: name the output *.parquet (per-row "
            "summaries) or *.zarr (every draw, as a DataTree group)."
        )
    return kind


def _refuse_no_rows() -> NoReturn:
    raise SourceDataError(
        "The pass read no rows, so it has nothing to write: the data is empty. No output was "
        "written."
    )


class _Writer:
    """A writer that completes its output on success and drops it on failure, as a context."""

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Stop without completing the output (which the caller removes); never raises."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class ParquetRows(_Writer):
    """Columns of per-row results appended to a Parquet file, a row group at a time.

    Parameters
    ----------
    sink : binary file
        Where the file is written, open for writing (from
        :meth:`~pymc_extras.streaming.workflow.output_files.OutputFiles.file`); the caller closes it.
    """

    def __init__(self, sink: BinaryIO):
        self.pa = import_optional("pyarrow", extra="parquet", reader="Writing Parquet output")
        import pyarrow.parquet as pq

        self._pq = pq
        self._sink = sink
        self._writer: Any = None
        self._pending: list[dict[str, np.ndarray]] = []
        self._held = 0
        self.rows = 0

    def write(self, columns: Mapping[str, np.ndarray]) -> None:
        self._pending.append(dict(columns))
        self._held += len(next(iter(columns.values())))
        if self._held >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        names = list(self._pending[0])
        table = self.pa.table(
            {name: np.concatenate([p[name] for p in self._pending]) for name in names}
        )
        self._pending, self._held = [], 0
        if self._writer is None:
            self._writer = self._pq.ParquetWriter(self._sink, table.schema)
        self._writer.write_table(table, row_group_size=PARQUET_ROW_GROUP_ROWS)
        self.rows += table.num_rows

    def close(self) -> None:
        self._flush()
        if self._writer is None:
            _refuse_no_rows()
        self._writer.close()
        self._writer = None

    def abort(self) -> None:
        self._pending = []
        writer, self._writer = self._writer, None
        if writer is not None:
            # After a failed write pyarrow has closed the file itself; otherwise this writes
            # the footer of a file that is about to be removed. Either way it is not the error.
            with contextlib.suppress(OSError, self.pa.ArrowException):
                writer.close()


class ZarrDraws(_Writer):
    """Draws of shape (chain, draw, rows, ...) appended along the rows to a Zarr DataTree group.

    The store (Zarr format 2, metadata consolidated on :meth:`close`) opens with
    ``xarray.open_datatree(path, engine="zarr")``, lazily: its group (for example
    ``predictions``) has dims ``chain``, ``draw`` and ``row``, and the row numbers as the
    coordinate of ``row``.

    Parameters
    ----------
    path : Path
        An empty folder that becomes the store (from
        :meth:`~pymc_extras.streaming.workflow.output_files.OutputFiles.folder`).
    """

    def __init__(self, path: Path, group: str, sample_coords: dict, dims: Mapping[str, tuple]):
        self.zarr = import_optional("zarr", extra="zarr", reader="Writing Zarr output")
        self.path, self.group = path, group
        self._coords = sample_coords
        self._dims = dims
        self._pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        self._held = 0
        self._started = False
        self.rows = 0

    def write(self, rows: np.ndarray, draws: Mapping[str, np.ndarray]) -> None:
        self._pending.append((rows, dict(draws)))
        self._held += sum(value.nbytes for value in draws.values())
        if self._held >= ZARR_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        import xarray as xr

        rows = np.concatenate([r for r, _ in self._pending])
        chains, draws = len(self._coords["chain"]), len(self._coords["draw"])
        variables = {}
        for name in self._pending[0][1]:
            values = np.concatenate([d[name] for _, d in self._pending], axis=1)
            values = values.reshape(chains, draws, *values.shape[1:])
            variables[name] = (("chain", "draw", "row", *self._dims[name]), values)
        self._pending, self._held = [], 0
        if not self._started:
            dataset = xr.Dataset(variables, coords={**self._coords, "row": rows})
            # Zarr format 2: its consolidated metadata lets xarray open the store without a
            # warning, and every Zarr reader reads it.
            dataset.to_zarr(
                self.path, group=self.group, mode="w", consolidated=False, zarr_format=2
            )
            self._started = True
        else:
            group = self.zarr.open_group(os.fspath(self.path), mode="r+", path=self.group)
            for name, (_, values) in variables.items():
                group[name].append(values, axis=2)
            group["row"].append(rows)
        self.rows += len(rows)

    def close(self) -> None:
        self._flush()
        if not self._started:
            _refuse_no_rows()
        self.zarr.consolidate_metadata(os.fspath(self.path))

    def abort(self) -> None:
        self._pending = []


class DatasetMoments:
    """Mean and variance of each of several series over all their rows, merged chunk by chunk.

    Chan et al.'s pairwise update keeps the variance accurate over billions of rows.
    """

    def __init__(self):
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, values: np.ndarray) -> None:
        """Add rows: ``values`` has shape (series, rows)."""
        n = values.shape[1]
        if n == 0:
            return
        mean = values.mean(axis=1)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def variance(self) -> np.ndarray:
        assert self.m2 is not None
        return self.m2 / max(self.count - 1, 1)


class DatasetQuantiles:
    """Quantiles of each of several series over all their rows, from histograms in one pass.

    Every series is counted on one grid of ``QUANTILE_BINS`` bins of equal width, set from the
    first rows and doubled in width (merging pairs of bins) whenever rows fall outside it, so
    it always covers every row seen. A quantile is interpolated within the bin that holds the
    ``ceil(q * n)``-th smallest value, so it is within the final bin width, :attr:`resolution`,
    of that value (``numpy.quantile(..., method="inverted_cdf")``); the width is at most a
    2,048th of the range of the values (a 4,096th at best).
    """

    def __init__(self, bins: int = QUANTILE_BINS):
        self.bins = bins
        self.counts: np.ndarray | None = None
        self.center = 0.0
        self.width = 0.0

    @property
    def resolution(self) -> float:
        """The bin width: the bound on each quantile's error."""
        return self.width

    def _low(self) -> float:
        return self.center - self.width * self.bins / 2

    def add(self, values: np.ndarray) -> None:
        """Add rows: ``values`` has shape (series, rows)."""
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            return
        lo, hi = float(values.min()), float(values.max())
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise ValueError(
                "Quantiles of a dataset need finite values; the values given hold NaN or inf."
            )
        if self.counts is None:
            self.center = (lo + hi) / 2
            span = hi - lo if hi > lo else max(abs(self.center), 1.0) * 1e-3
            self.width = 2 * span / self.bins  # the first rows fill the middle half
            self.counts = np.zeros((values.shape[0], self.bins), dtype=np.int64)
        while lo < self._low() or hi >= self._low() + self.width * self.bins:
            self._widen()
        index = np.floor((values - self._low()) / self.width).astype(np.int64)
        np.clip(index, 0, self.bins - 1, out=index)
        series = np.arange(values.shape[0])[:, None] * self.bins
        flat = np.bincount((index + series).ravel(), minlength=self.counts.size)
        self.counts += flat.reshape(self.counts.shape)

    def _widen(self) -> None:
        assert self.counts is not None
        merged = self.counts.reshape(len(self.counts), self.bins // 2, 2).sum(axis=2)
        self.counts = np.zeros_like(self.counts)
        self.counts[:, self.bins // 4 : self.bins // 4 + self.bins // 2] = merged
        self.width *= 2

    def quantiles(self, qs: Sequence[float]) -> np.ndarray:
        """Shape (series, len(qs)): each quantile, interpolated linearly within its bin."""
        assert self.counts is not None
        cumulative = np.cumsum(self.counts, axis=1)
        total = cumulative[:, -1:]
        result = np.empty((len(self.counts), len(qs)))
        edges = self._low() + self.width * np.arange(self.bins + 1)
        for j, q in enumerate(qs):
            target = q * total[:, 0]
            index = np.array(
                [np.searchsorted(row, t, side="left") for row, t in zip(cumulative, target)]
            )
            index = np.clip(index, 0, self.bins - 1)
            rows = np.arange(len(self.counts))
            before = np.where(index > 0, cumulative[rows, np.maximum(index - 1, 0)], 0)
            inside = self.counts[rows, index]
            fraction = np.where(inside > 0, (target - before) / np.maximum(inside, 1), 0.0)
            result[:, j] = edges[index] + np.clip(fraction, 0, 1) * self.width
        return result
