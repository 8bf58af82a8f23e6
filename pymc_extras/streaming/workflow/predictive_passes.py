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
"""Posterior predictive passes over data larger than memory: predictions and full-data checks."""

import contextlib
import time

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from pymc.exceptions import SourceDataError
from pymc.model import Model, modelcontext
from pymc.pytensorf import compile
from pymc.streaming.sources import Chunk, Source, as_source
from xarray import DataTree

from pymc_extras.streaming.passes.minibatched_data import data_chunks
from pymc_extras.streaming.workflow.data_blocks import DataBlock, data_blocks
from pymc_extras.streaming.workflow.output_files import OutputFiles
from pymc_extras.streaming.workflow.pointwise import (
    PREDICTIVE_BLOCK_ROWS,
    ChunkPredictive,
    Draws,
    block_seed,
    blocks_of_rows,
    choose_block,
)
from pymc_extras.streaming.workflow.row_outputs import (
    DatasetMoments,
    DatasetQuantiles,
    ParquetRows,
    ZarrDraws,
    check_quantiles,
    output_format,
    quantile_name,
    row_summaries,
)

__all__ = ["PassReport", "ppc_summary", "predict_to_file"]


@dataclass
class PassReport:
    """What a pass wrote and what it cost.

    Attributes
    ----------
    path : Path or None
        The file or store written.
    rows : int
        Rows read (and written).
    passes : int
        Passes over the data.
    seconds : float
        Wall time of the pass.
    columns : list of str
        The columns (Parquet) or variables (Zarr) written.
    """

    path: Path | None
    rows: int
    passes: int = 1
    seconds: float = 0.0
    columns: list[str] = field(default_factory=list)


def _new_data_chunks(block: DataBlock, data) -> Iterator[Chunk]:
    """Chunks of new rows for every output of the block (observed-only outputs as zeros)."""
    source = (
        data
        if isinstance(data, Source)
        else as_source(*(data if isinstance(data, tuple) else (data,)))
    )
    given = len(source.specs)
    covariates = block.covariates()
    if given == len(block.placeholders):
        slots = list(range(given))
    elif given == len(covariates):
        slots = covariates
    else:
        raise ValueError(
            f"The stream has {len(block.names)} outputs {block.names}, of which the model reads "
            f"{[block.names[i] for i in covariates]} besides its observations; the new data "
            f"has {given} output(s). Give one output per stream output, or one per output read."
        )
    for i, spec in zip(slots, source.specs):
        if spec.row_shape != block.row_shapes[i]:
            raise ValueError(
                f"The new data's output for {block.names[i]!r} has rows of shape "
                f"{spec.row_shape}, but the model's have {block.row_shapes[i]}."
            )
    given_placeholders = [block.placeholders[i] for i in slots]
    with contextlib.closing(data_chunks(source, given_placeholders)) as chunks:
        for chunk in chunks:
            rows = len(chunk[0])
            parts = []
            for i, placeholder in enumerate(block.placeholders):
                if i in slots:
                    parts.append(chunk[slots.index(i)])
                else:
                    shape = (rows, *block.row_shapes[i])
                    parts.append(np.zeros(shape, dtype=placeholder.dtype))
            yield tuple(parts)


def predict_to_file(
    idata: DataTree,
    data,
    path,
    model: Model | None = None,
    *,
    var_names: Sequence[str] | None = None,
    quantiles: Sequence[float] = (0.05, 0.95),
    random_seed=None,
    overwrite: bool = False,
    compile_kwargs: dict | None = None,
) -> PassReport:
    """Predictions on new data larger than memory, written out in chunks, in one pass.

    The new rows are read from ``data`` in chunks; for each block of
    :data:`~pymc_extras.streaming.workflow.pointwise.PREDICTIVE_BLOCK_ROWS` rows, the posterior
    predictive draws of every posterior draw are computed in one call and written out:

    - ``*.parquet``: one row per row of the new data, in order, with the columns ``row`` and,
      for each variable, ``<var>_mean``, ``<var>_sd`` and ``<var>_q<q>`` for each quantile;
    - ``*.zarr``: every draw, as a DataTree store whose ``predictions`` group has dims
      ``chain``, ``draw`` and ``row`` (the row number in the new data), as
      ``pm.sample_posterior_predictive(..., predictions=True)`` would return it.

    Exactness: block ``b`` (rows ``b·1024`` to ``b·1024 + 1023``) holds exactly the draws
    ``pm.sample_posterior_predictive(idata, random_seed=s_b)`` returns after ``pm.set_data`` of
    those rows on the in-memory model, where ``s_b =
    block_seed(numpy.random.SeedSequence(random_seed), b)``: the same posterior draws, the same
    random generator, drawn vectorised over draws (up to floating-point rounding, and for
    models whose predicted variables have one random generator each, which is PyMC's default).
    The draws therefore depend on the seed and the row number only, not on how the source is
    chunked. The means, sds and quantiles of a row are Monte Carlo estimates over the posterior
    draws: the mean's standard error is ``sd / sqrt(draws)``.

    Memory: one chunk of the source (and two read ahead), and draws × 1,024 values per
    variable and per intermediate array, whatever the number of rows.

    The output appears only when the pass has finished: it is written beside ``path`` under a
    temporary name (``.<name>.<random>.tmp``), synced to disk and renamed to ``path``. A pass
    that fails (a source that changes or goes away, a full disk, an interrupt) leaves no output
    and no temporary, and its own error is raised. ``path`` itself is never a symbolic link:
    nothing is written through one (see
    :class:`~pymc_extras.streaming.workflow.output_files.OutputFiles`).

    Parameters
    ----------
    idata : DataTree
        Holds the posterior.
    data : Source, array, or tuple of arrays
        The new rows, as any source ``pm.Minibatch(..., streaming=True)`` takes (for example a
        ``ParquetSource`` over the new file): one output per output of the stream, or one per
        output the model reads besides its observations (e.g. only ``X`` of ``(X, y)``).
    path : str or Path
        The output: ``*.parquet`` or ``*.zarr``.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    var_names : list of str, optional
        Variables to predict: observed variables (by default all that read the stream) and
        deterministics that read it.
    quantiles : sequence of float, default (0.05, 0.95)
        Per-row quantiles written to Parquet (a 90% interval by default).
    random_seed : int, optional
        Seeds the draws.
    overwrite : bool, default False
        Replace an existing output (a file, or a Zarr store), once the new one is complete.
    compile_kwargs : dict, optional
        Passed to :func:`pymc.pytensorf.compile`.

    Returns
    -------
    PassReport

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is False, is a symbolic link, or is something
        other than a file (for Parquet) or a Zarr store (for Zarr).
    FileNotFoundError
        If the folder of ``path`` does not exist.
    ValueError
        If the format is unknown, or the new data's outputs do not match the stream's.

    Examples
    --------
    .. code-block:: python

        new = pmx.streaming.ParquetSource("new.parquet", columns=[features])
        pmx.streaming.predict_to_file(idata, new, "new_predictions.parquet", model)
    """
    model = modelcontext(model)
    kind = output_format(path)
    quantiles = check_quantiles(quantiles, "quantiles")
    with OutputFiles(overwrite=overwrite) as outputs:
        target = outputs.folder(path) if kind == "zarr" else outputs.file(path)
        rows, columns, seconds = _predict(
            idata, data, target, model, var_names, quantiles, random_seed, compile_kwargs
        )
    return PassReport(Path(path), rows, 1, seconds, columns)


def _predict(idata, data, target, model, var_names, quantiles, random_seed, compile_kwargs):
    """The pass of :func:`predict_to_file`, into ``target``: an open file, or a Zarr folder."""
    full_model, blocks = data_blocks(model)
    block, var_names = choose_block(full_model, blocks, var_names, deterministics=True)
    predictive = ChunkPredictive(full_model, block, var_names, **(compile_kwargs or {}))
    draws = Draws.from_posterior(idata, full_model)
    root = np.random.SeedSequence(random_seed)
    started = time.perf_counter()
    trailing = {name: full_model[name].type.ndim - 1 for name in var_names}
    dims = {name: tuple(f"{name}_dim_{k}" for k in range(1, n)) for name, n in trailing.items()}
    writer: ParquetRows | ZarrDraws
    if isinstance(target, Path):
        writer = ZarrDraws(target, "predictions", draws.sample_coords, dims)
    else:
        writer = ParquetRows(target)
    rows = 0
    columns: list[str] = []
    with writer:
        for number, chunk in blocks_of_rows(_new_data_chunks(block, data), PREDICTIVE_BLOCK_ROWS):
            out = predictive(draws, chunk, seed=block_seed(root, number))
            row_numbers = np.arange(rows, rows + len(chunk[0]))
            if isinstance(writer, ParquetRows):
                summary = {"row": row_numbers, **row_summaries(out, quantiles)}
                columns = list(summary)
                writer.write(summary)
            else:
                columns = list(out)
                writer.write(row_numbers, out)
            rows += len(chunk[0])
    return rows, columns, time.perf_counter() - started


def ppc_summary(
    idata: DataTree,
    model: Model | None = None,
    *,
    path=None,
    var_names: Sequence[str] | None = None,
    quantiles: Sequence[float] = (0.05, 0.95),
    data_quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    random_seed=None,
    overwrite: bool = False,
    compile_kwargs: dict | None = None,
) -> DataTree:
    """Posterior predictive checks of every row of the data, in one streamed pass.

    For each posterior draw, a replicate of the whole dataset is drawn block by block (as in
    :func:`predict_to_file`) and summarised without being kept:

    - dataset-level statistics of each observed variable, for every draw and for the
      observations: the mean, the variance and the quantiles ``data_quantiles`` over all rows;
      a calibrated model puts the observed statistic inside the spread of the replicated ones
      (its posterior predictive p-value, the share of draws whose statistic exceeds the
      observed one, far from 0 and 1);
    - with ``path``, per-row results written out in chunks to Parquet: ``row``, the predictive
      ``<var>_mean``, ``<var>_sd`` and quantiles, the ``<var>_observed`` value and its
      ``<var>_pit`` (the share of draws below it; uniform over rows when the model is
      calibrated).

    Exactness: means and variances are exact for the draws made (summed in float64, merged
    with Chan et al.'s update); quantiles over the data are read off histograms of 4,096 bins,
    within ``quantile_resolution`` (one bin width, in ``attrs``) of the exact quantile of the
    same values (``numpy.quantile(..., method="inverted_cdf")``). The draws themselves are those
    of :func:`predict_to_file` on the data's rows.

    Memory: one chunk of the source (and two read ahead), draws × 1,024 values per
    intermediate array, and 32 KiB per draw for the histograms; never the data.

    ``path`` is written as :func:`predict_to_file` writes its output: under a temporary name,
    renamed into place when the pass has finished, never through a symbolic link, and left
    out entirely by a pass that fails.

    Parameters
    ----------
    idata : DataTree
        Holds the posterior.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    path : str or Path, optional
        A ``*.parquet`` file for the per-row results.
    var_names : list of str, optional
        Observed variables to check; by default all that read the stream.
    quantiles : sequence of float, default (0.05, 0.95)
        Per-row quantiles written to ``path``.
    data_quantiles : sequence of float, default (0.1, 0.5, 0.9)
        Quantiles of the whole dataset to compare.
    random_seed : int, optional
        Seeds the draws.
    overwrite : bool, default False
        Replace an existing ``path``, once the new one is complete.
    compile_kwargs : dict, optional
        Passed to :func:`pymc.pytensorf.compile`.

    Returns
    -------
    DataTree
        ``posterior_predictive`` holds each variable's statistics for every draw, dims
        ``chain``, ``draw``, ``statistic`` (``mean``, ``var``, ``q0.1``, ...);
        ``observed_data`` holds the observed statistics, dim ``statistic``. ``attrs`` give the
        rows, passes, seconds and ``quantile_resolution`` per variable.

    Raises
    ------
    SourceDataError
        If an observation is NaN or infinite (the message gives its row).
    ValueError
        If a posterior predictive draw is NaN or infinite, or ``path`` is not ``*.parquet``.
    FileExistsError, FileNotFoundError
        For ``path``, as :func:`predict_to_file` raises them.

    Examples
    --------
    .. code-block:: python

        checks = pmx.streaming.ppc_summary(idata, model, path="checks.parquet")
        replicated = checks.posterior_predictive["y"]
        p_values = (replicated >= checks.observed_data["y"]).mean(("chain", "draw"))
    """
    model = modelcontext(model)
    quantiles = check_quantiles(quantiles, "quantiles")
    data_quantiles = check_quantiles(data_quantiles, "data_quantiles")
    if path is not None and output_format(path) != "parquet":
        raise ValueError(f"ppc_summary writes per-row results to *.parquet, got {str(path)!r}.")
    with OutputFiles(overwrite=overwrite) as outputs:
        sink = None if path is None else outputs.file(path)
        return _check(
            idata, model, sink, var_names, quantiles, data_quantiles, random_seed, compile_kwargs
        )


def _check(
    idata, model, sink, var_names, quantiles, data_quantiles, random_seed, compile_kwargs
) -> DataTree:
    """The pass of :func:`ppc_summary`, with per-row results written to ``sink`` if given."""
    full_model, blocks = data_blocks(model)
    block, var_names = choose_block(full_model, blocks, var_names, deterministics=False)
    predictive = ChunkPredictive(full_model, block, var_names, **(compile_kwargs or {}))
    observed_values = [full_model.rvs_to_values[full_model[name]] for name in var_names]
    observe = compile(list(block.placeholders), observed_values, on_unused_input="ignore")
    draws = Draws.from_posterior(idata, full_model)
    root = np.random.SeedSequence(random_seed)
    moments = {name: DatasetMoments() for name in var_names}
    sketches = {name: DatasetQuantiles() for name in var_names}
    writer = None if sink is None else ParquetRows(sink)
    started = time.perf_counter()
    rows = 0
    with (
        writer or contextlib.nullcontext(),
        contextlib.closing(data_chunks(block.source(), block.placeholders)) as chunks,
    ):
        for number, chunk in blocks_of_rows(chunks, PREDICTIVE_BLOCK_ROWS):
            out = predictive(draws, chunk, seed=block_seed(root, number))
            observed = dict(zip(var_names, observe(*chunk)))
            n = len(chunk[0])
            for name in var_names:
                data_rows = observed[name].reshape(1, n, -1)
                replicated = out[name].reshape(draws.size, n, -1)
                _refuse_non_finite(data_rows, name, rows, observed=True)
                _refuse_non_finite(replicated, name, rows, observed=False)
                series = np.concatenate(
                    [data_rows.reshape(1, -1), replicated.reshape(draws.size, -1)]
                )
                moments[name].add(series)
                sketches[name].add(series)
            if writer is not None:
                summary = row_summaries(out, quantiles, observed)
                writer.write({"row": np.arange(rows, rows + n), **summary})
            rows += n
    return _statistics_tree(
        var_names, moments, sketches, data_quantiles, draws, rows, time.perf_counter() - started
    )


def _refuse_non_finite(values: np.ndarray, name: str, first_row: int, *, observed: bool) -> None:
    """Raise, naming the rows, if values of shape (series, rows, elements) hold NaN or inf."""
    bad = ~np.isfinite(values).all(axis=(0, 2))
    if not bad.any():
        return
    rows = first_row + np.flatnonzero(bad)
    where = f"row {rows[0]}" if len(rows) == 1 else f"rows {rows[:5].tolist()}"
    if len(rows) > 5:
        where += f" and {len(rows) - 5} more in this block"
    if observed:
        raise SourceDataError(
            f"The observations of {name!r} hold NaN or inf at {where}; ppc_summary compares "
            "the data with replicates of it, which needs finite observations. Remove or impute "
            "those rows (check_finite=True on the stream refuses them while fitting)."
        )
    raise ValueError(
        f"The posterior predictive draws of {name!r} hold NaN or inf at {where} of the data; "
        "check the posterior draws (a scale of inf or NaN) and the covariates of those rows."
    )


def _statistics_tree(var_names, moments, sketches, data_quantiles, draws, rows, seconds):
    statistics = ["mean", "var", *(quantile_name(q) for q in data_quantiles)]
    replicated, observed = {}, {}
    for name in var_names:
        values = np.column_stack(
            [moments[name].mean, moments[name].variance(), sketches[name].quantiles(data_quantiles)]
        )
        observed[name] = (("statistic",), values[0])
        shaped = values[1:].reshape(draws.chains, draws.draws, len(statistics))
        replicated[name] = (("chain", "draw", "statistic"), shaped)
    coords = {"statistic": statistics}
    tree = DataTree.from_dict(
        {
            "posterior_predictive": xr.Dataset(
                replicated, coords={**draws.sample_coords, **coords}
            ),
            "observed_data": xr.Dataset(observed, coords=coords),
        }
    )
    tree.attrs.update(
        {
            "rows": rows,
            "passes": 1,
            "seconds": seconds,
            "quantile_resolution": {name: sketches[name].resolution for name in var_names},
        }
    )
    return tree
