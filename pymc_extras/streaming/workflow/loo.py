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
"""Sub-sampled PSIS-LOO of a streaming model: a point approximation over all rows in one pass."""

import contextlib
import io
import tempfile

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import arviz_stats
import numpy as np
import pymc as pm
import xarray as xr

from arviz_base import rcParams
from arviz_stats.utils import ELPDDataLOOSubsample
from pymc.exceptions import SourceDataError
from pymc.model import Model, modelcontext
from scipy.special import logsumexp
from xarray import DataTree

from pymc_extras.streaming.passes.full_data import DEFAULT_CHUNK_SIZE
from pymc_extras.streaming.passes.minibatched_data import data_chunks
from pymc_extras.streaming.workflow.data_blocks import (
    DataBlock,
    RowPicker,
    as_rows,
    data_blocks,
    holding_rows,
)
from pymc_extras.streaming.workflow.output_files import OutputFiles
from pymc_extras.streaming.workflow.pointwise import ChunkLogLikelihood, Draws, choose_block

__all__ = ["loo_subsample"]

LOO_FILES = ("elpd_loo_approx.npy", "elpd_i.npy", "pareto_k.npy")
"""The per-row arrays ``loo_subsample(..., pointwise_dir=...)`` writes, one float64 per row."""


_NPY_HEADER_BYTES = 128
"""Bytes of the ``.npy`` header of a float64 vector: 128 for any number of rows below 2**63, as
numpy pads headers to a multiple of 64 bytes. Written after the pass, once the rows are counted."""


def _npy_header(rows: int) -> bytes:
    buffer = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (rows,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    if buffer.tell() != _NPY_HEADER_BYTES:
        raise RuntimeError(f"A .npy header of {rows} rows takes {buffer.tell()} bytes, not 128.")
    return buffer.getvalue()


class _RowVector:
    """A float64 value per row of the data, appended chunk by chunk to a ``.npy`` file.

    Nothing is allocated from the number of rows a source declares: the file grows as rows
    arrive, and its header is written once the pass has counted them. It is written with plain
    writes (never a writable memory map, whose dirty pages would count in the process's
    memory) and read back as a read-only memory map of the file written, whatever its name
    becomes: memory holds only what the system caches of it.
    """

    def __init__(self, file: BinaryIO, fill: float | None = None):
        self._file, self._fill = file, fill
        self.rows = 0
        file.seek(_NPY_HEADER_BYTES)

    def append(self, values: np.ndarray | None, count: int) -> None:
        block = np.full(count, self._fill) if values is None else values
        self._file.write(np.ascontiguousarray(block, dtype="<f8").tobytes())
        self.rows += count

    def put(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Set the values of some rows, after the pass."""
        for row, value in zip(rows, np.asarray(values, dtype="<f8")):
            self._file.seek(_NPY_HEADER_BYTES + 8 * int(row))
            self._file.write(value.tobytes())

    def finish(self) -> xr.DataArray:
        self._file.seek(0)
        self._file.write(_npy_header(self.rows))
        self._file.flush()
        values = np.memmap(
            self._file, dtype="<f8", mode="r", offset=_NPY_HEADER_BYTES, shape=(self.rows,)
        )
        return xr.DataArray(values, dims=["row"])


@dataclass
class _Approximation:
    """The point approximation of each row's elpd, summed over the rows in one pass."""

    total: float = 0.0
    total_squares: float = 0.0
    rows: int = 0

    def add(self, values: np.ndarray) -> None:
        self.total += float(np.nansum(values))
        self.total_squares += float(np.nansum(np.square(values)))
        self.rows += len(values)


def _difference_estimate(
    elpd_sample: np.ndarray, approx_sample: np.ndarray, approx: _Approximation, n: int
) -> tuple[float, float, float]:
    """The difference estimator of the elpd and its standard errors, from sums over all rows.

    Magnusson et al. (2019), eqs. (7)–(9), as ``arviz_stats`` computes them from the vector of
    approximations, here from its sum and sum of squares, so that no per-row vector is needed.
    Returns the estimate, its subsampling standard error and its total standard error.
    """
    finite = np.isfinite(elpd_sample) & np.isfinite(approx_sample)
    m = int(finite.sum())
    if m == 0:
        return np.nan, np.inf, np.inf
    elpd, point = elpd_sample[finite], approx_sample[finite]
    diff = elpd - point
    scaled_diff = n * diff.mean()
    estimate = approx.total + scaled_diff
    if m < 2:
        return estimate, np.inf, np.inf
    subsampling_var = n**2 * max(0.0, 1 - m / n) * diff.var(ddof=1) / m
    total_var = (
        approx.total_squares
        + n * np.mean(elpd**2 - point**2)
        - (scaled_diff**2 - subsampling_var + 2 * approx.total * estimate - approx.total**2) / n
    )
    return estimate, float(np.sqrt(subsampling_var)), float(np.sqrt(max(total_var, 0.0)))


def _point_approximation(values: np.ndarray, method: str, size: int) -> np.ndarray:
    """Per-row approximation from log-likelihoods of shape (points, rows, ...)."""
    values = values.reshape(values.shape[0], values.shape[1], -1).sum(axis=2)
    if method == "plpd":
        return values[0]
    return logsumexp(values, axis=0) - np.log(size)


def loo_subsample(
    idata: DataTree,
    model: Model | None = None,
    *,
    observations=10_000,
    var_name: str | None = None,
    method: str = "plpd",
    log_p=None,
    log_q=None,
    seed=315,
    pointwise: bool | None = None,
    pointwise_dir=None,
    overwrite: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    compile_kwargs: dict | None = None,
) -> ELPDDataLOOSubsample:
    """PSIS-LOO-CV of a streaming model by sub-sampling, with a point approximation of every row.

    ``arviz_stats.loo_subsample`` estimates the elpd of ``N`` observations from exact PSIS-LOO
    on a simple random subsample of ``m`` of them and a cheap approximation of every
    observation's elpd, combined by a difference estimator (Magnusson et al. 2019). It needs
    the approximation for all ``N`` rows, which no log-likelihood in memory can give for data
    larger than memory. Here it is computed in **one pass** over the stream, which also picks
    the subsample's rows; the subsample's pointwise log-likelihood is then computed in memory by
    ``pm.compute_log_likelihood`` on a copy of the model holding those rows, and PSIS-LOO on it
    by ``arviz_stats.loo`` or, with ``log_p`` and ``log_q``, ``arviz_stats.loo_approximate_
    posterior`` (the approximate-posterior correction of Magnusson et al. 2020, for ADVI and
    Pathfinder draws; see :func:`pymc_extras.streaming.workflow.approximation.log_densities`).

    What is exact and what is estimated: the subsample's pointwise log-likelihood is exact
    (that of the in-memory model); its PSIS-LOO elpd values are PyMC's and ArviZ's; the elpd is
    an **estimate** whose ``subsampling_se`` (the standard error of the subsampling) and ``se``
    (the total standard error, which also includes the elpd's own uncertainty, as ``az.loo``'s
    ``se``) are reported. On the same draws, the subsample and approximation, the result equals
    ``arviz_stats.loo_subsample``'s with the full log-likelihood in memory.

    Memory: the pass holds one chunk (``chunk_size // draws`` rows per compiled call with
    ``method="lpd"``), and the subsample's rows, whatever the number of rows. The per-row
    vectors that ``az.compare`` needs (``pointwise=True``: the approximation, and ``elpd_i``
    and ``pareto_k``, NaN outside the subsample) take 24 bytes per row **on disk**: they are
    written chunk by chunk as the rows arrive (never allocated from the number of rows a source
    declares) and returned as read-only memory maps, whose pages are the system's file cache.
    Without ``pointwise_dir`` they are unnamed temporary files in the temporary folder
    (``TMPDIR``; give it a disk with room, as a ``tmpfs`` there is memory), which disappear
    with the result.

    Parameters
    ----------
    idata : DataTree
        Holds the posterior.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    observations : int or array of int, default 10,000
        The subsample: a number of rows drawn at random without replacement (the same rows as
        ``arviz_stats.loo_subsample`` draws for the same ``seed``), or row numbers.
    var_name : str, optional
        The observed variable; needed when the model has several.
    method : {"plpd", "lpd"}, default "plpd"
        The approximation of each row's elpd: ``"plpd"``, the log-likelihood at the posterior
        mean (one evaluation per row); ``"lpd"``, the log predictive density over all draws
        (``draws`` evaluations per row, closer to the elpd, so a smaller subsampling SE).
    log_p, log_q : array or DataArray, optional
        The target's (unnormalised) and the approximation's log densities at each draw, dims
        ``chain`` and ``draw``: with both, the approximate-posterior correction is applied.
    seed : int, default 315
        Seeds the subsample (arviz_stats' default).
    pointwise : bool, optional
        Keep per-row vectors (needed by ``az.compare``). Defaults to
        ``rcParams["stats.ic_pointwise"]``.
    pointwise_dir : str or Path, optional
        A folder where the per-row vectors are kept as ``.npy`` files (:data:`LOO_FILES`),
        memory-mapped. They appear only when the call succeeds (written under temporary names,
        renamed into place), never through symbolic links. A folder that holds another
        result's files is refused, unless ``overwrite=True``; a result already returned keeps
        its own values even then (its memory maps hold the replaced files, which the system
        frees when the result is gone). Comparing models, give each its own folder to keep
        both on disk.
    overwrite : bool, default False
        Replace the files of another result in ``pointwise_dir``.
    chunk_size : int, default 65,536
        Values evaluated per compiled call.
    compile_kwargs : dict, optional
        Passed to :func:`pymc.pytensorf.compile`.

    Returns
    -------
    ELPDDataLOOSubsample
        As ``arviz_stats.loo_subsample`` returns, with its attributes ``passes`` (over the
        data) set to 1.

    Raises
    ------
    ValueError
        If the method is unknown, the source cannot tell its number of rows, or only one of
        ``log_p`` and ``log_q`` is given.
    SourceDataError
        If the source yields more or fewer rows than it says it has.
    FileExistsError
        If a file of :data:`LOO_FILES` in ``pointwise_dir`` is a symbolic link, or exists and
        ``overwrite`` is False.
    FileNotFoundError
        If ``pointwise_dir`` is not a folder.

    References
    ----------
    .. [1] Magnusson, M., Riis Andersen, M., Jonasson, J., & Vehtari, A. Bayesian Leave-One-Out
       Cross-Validation for Large Data. ICML (2019), PMLR 97:4244–4253.
    .. [2] Magnusson, M., Riis Andersen, M., Jonasson, J., & Vehtari, A. Leave-One-Out
       Cross-Validation for Bayesian Model Comparison in Large Data. AISTATS (2020), PMLR
       108:341–351.
    .. [3] Vehtari, A., Gelman, A., & Gabry, J. Practical Bayesian model evaluation using
       leave-one-out cross-validation and WAIC. Statistics and Computing 27 (2017).

    Examples
    --------
    .. code-block:: python

        loo = pmx.streaming.loo_subsample(idata, model, observations=10_000)
        az.compare({"linear": loo, "quadratic": loo_quadratic})  # same source, same seed
    """
    model = modelcontext(model)
    if method not in ("plpd", "lpd"):
        raise ValueError(f"method must be 'plpd' or 'lpd', got {method!r}.")
    if (log_p is None) != (log_q is None):
        raise ValueError(
            "The approximate-posterior correction needs both log_p and log_q; got only "
            f"{'log_p' if log_q is None else 'log_q'}. pymc_extras.streaming.log_densities "
            "computes both."
        )
    pointwise = rcParams["stats.ic_pointwise"] if pointwise is None else bool(pointwise)
    folder = None if pointwise_dir is None else Path(pointwise_dir)
    if folder is not None and not folder.is_dir():
        raise FileNotFoundError(f"pointwise_dir {str(folder)!r} is not a folder.")
    # The outputs are opened (and refused) first, before anything is compiled or read.
    with OutputFiles(overwrite=overwrite) as outputs, contextlib.ExitStack() as scratch:
        files: list[BinaryIO] = []
        if pointwise and folder is not None:
            files = [outputs.file(folder / name) for name in LOO_FILES]
        elif pointwise:  # unnamed files, gone with the result's memory maps
            files = [scratch.enter_context(tempfile.TemporaryFile()) for _ in LOO_FILES]
        vectors = [_RowVector(file, fill) for file, fill in zip(files, (None, np.nan, np.nan))]
        full_model, blocks = data_blocks(model)
        block, names = choose_block(full_model, blocks, var_name, deterministics=False)
        if len(names) != 1:
            raise ValueError(f"The model has several observed variables {names}: pass var_name.")
        [var_name] = names
        n = block.num_rows
        if n is None:
            raise ValueError(
                "The source cannot tell its number of rows, which the estimator needs; give "
                "the stream total_size=, or use a source that knows its size."
            )
        chosen = as_rows(observations, n, seed=seed)
        draws = Draws.from_posterior(idata, full_model)
        point = draws.mean() if method == "plpd" else draws
        loglik = ChunkLogLikelihood(full_model, block, [var_name], **(compile_kwargs or {}))
        approx, rows, approx_sample = _pass(
            block, loglik, var_name, point, method, chosen, vectors, chunk_size, n
        )
        return _estimate(
            idata,
            full_model,
            blocks,
            block,
            rows,
            chosen,
            approx,
            approx_sample,
            var_name,
            log_p,
            log_q,
            vectors,
            n,
            draws.size,
        )


def _pass(block: DataBlock, loglik, var_name, point: Draws, method, chosen, vectors, chunk_size, n):
    """One pass: every row's approximation, its sums, and the subsample's rows."""
    approx = _Approximation()
    picker = RowPicker(chosen)
    found = np.empty(len(chosen))
    rows_per_call = max(1, chunk_size // point.size)
    start = 0
    with contextlib.closing(data_chunks(block.source(), block.placeholders)) as chunks:
        for chunk in chunks:
            if start + len(chunk[0]) > n:
                raise SourceDataError(f"The source yields more rows than the {n} it says it has.")
            picker.offer(start, chunk)
            for offset in range(0, len(chunk[0]), rows_per_call):
                part = tuple(a[offset : offset + rows_per_call] for a in chunk)
                values = _point_approximation(loglik(point, part)[var_name], method, point.size)
                approx.add(values)
                first, last = np.searchsorted(chosen, [start, start + len(values)])
                found[first:last] = values[chosen[first:last] - start]
                if vectors:
                    vectors[0].append(values, len(values))
                    vectors[1].append(None, len(values))
                    vectors[2].append(None, len(values))
                start += len(values)
    if start != n:
        raise SourceDataError(f"The source yielded {start} rows, but says it has {n}.")
    return approx, picker.result(start), found


def _estimate(
    idata,
    full_model,
    blocks,
    block,
    rows,
    chosen,
    approx,
    approx_sample,
    var_name,
    log_p,
    log_q,
    vectors,
    n,
    n_samples,
) -> ELPDDataLOOSubsample:
    copy = holding_rows(
        full_model, blocks, {blocks.index(block): rows}, {blocks.index(block): chosen}
    )
    posterior = DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})
    log_likelihood = pm.compute_log_likelihood(
        posterior, model=copy, var_names=[var_name], extend_inferencedata=False, progressbar=False
    )
    sample = DataTree.from_dict(
        {"posterior": posterior["posterior"].to_dataset(), "log_likelihood": log_likelihood}
    )
    loglik = log_likelihood[var_name]
    obs_dims = [dim for dim in loglik.dims if dim not in ("chain", "draw")]
    if len(obs_dims) > 1:
        loglik = loglik.sum(obs_dims[1:])
        sample["log_likelihood"] = xr.Dataset({var_name: loglik})
    if log_p is not None:
        loo_sample = arviz_stats.loo_approximate_posterior(
            sample, log_p, log_q, pointwise=True, var_name=var_name
        )
    else:
        loo_sample = arviz_stats.loo(sample, pointwise=True, var_name=var_name)
    elpd_i = loo_sample.elpd_i
    lpd = xr.apply_ufunc(
        lambda a: logsumexp(a, axis=(-2, -1)) - np.log(n_samples),
        loglik.transpose(..., "chain", "draw"),
        input_core_dims=[["chain", "draw"]],
    )
    estimate, subsampling_se, se = _difference_estimate(
        elpd_i.values.reshape(-1), approx_sample, approx, n
    )
    p_loo, _, _ = (lpd - elpd_i).azstats.srs_estimator(n_data_points=n)
    full: dict[str, Any] = {}
    if vectors:
        vectors[1].put(chosen, elpd_i.values.reshape(-1))
        vectors[2].put(chosen, loo_sample.pareto_k.values.reshape(-1))
        full = dict(zip(("approx", "elpd_i", "pareto_k"), (v.finish() for v in vectors)))
    result = ELPDDataLOOSubsample(
        elpd=estimate,
        se=se,
        p=p_loo,
        n_samples=n_samples,
        n_data_points=n,
        scale="log",
        warning=loo_sample.warning,
        good_k=loo_sample.good_k,
        elpd_i=cast(xr.DataArray, full.get("elpd_i")),
        pareto_k=cast(xr.DataArray, full.get("pareto_k")),
        approx_posterior=log_p is not None,
        subsampling_se=subsampling_se,
        subsample_size=len(chosen),
        log_p=log_p,
        log_q=log_q,
        loo_subsample_observations=chosen,
        elpd_loo_approx=cast(xr.DataArray, full.get("approx")),
    )
    result.passes = 1  # type: ignore[attr-defined]
    return result
