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
"""The copy of a minibatched model that holds chosen rows of its data in memory (a user step)."""

from collections.abc import Mapping, Sequence

import numpy as np

from pymc.model import Model
from pymc.streaming.casting import cast_exactly

from pymc_extras.streaming.workflow.data_blocks import (
    DataBlock,
    as_rows,
    data_blocks,
    holding_rows,
    read_rows,
)

__all__ = ["rows_model"]


def _bind(blocks: Sequence[DataBlock], data) -> dict[int, tuple[np.ndarray, ...]]:
    """New data for the blocks: one array per output; observed-only outputs may be left out."""
    if not isinstance(data, Mapping):
        if len(blocks) != 1:
            raise ValueError(
                f"The model reads {len(blocks)} streams; pass data as a dict from each "
                "minibatch variable (or its name) to its new values."
            )
        values = data if isinstance(data, tuple | list) else (data,)
        return {0: _complete(blocks[0], [np.asarray(v) for v in values])}
    by_name = {name: (b, i) for b, block in enumerate(blocks) for i, name in enumerate(block.names)}
    given: dict[int, dict[int, np.ndarray]] = {}
    for key, value in data.items():
        name = key if isinstance(key, str) else getattr(key, "name", None)
        if name not in by_name:
            raise KeyError(
                f"{key!r} is not a minibatch variable of the model. Its minibatch variables "
                f"are {sorted(by_name)}: pass the variables pm.Minibatch returned, or their names."
            )
        b, i = by_name[name]
        given.setdefault(b, {})[i] = np.asarray(value)
    bound = {}
    for b, block in enumerate(blocks):
        outputs = given.get(b, {})
        missing = [block.names[i] for i in block.covariates() if i not in outputs]
        if missing:
            raise ValueError(
                f"New data must give every minibatch variable that the model reads besides its "
                f"observations; missing: {missing}."
            )
        bound[b] = _fill(block, outputs)
    return bound


def _complete(block: DataBlock, values: list[np.ndarray]) -> tuple[np.ndarray, ...]:
    """Positional new data: every output, or the covariates only, in order."""
    if len(values) == len(block.names):
        return _fill(block, dict(enumerate(values)))
    covariates = block.covariates()
    if len(values) != len(covariates):
        raise ValueError(
            f"The stream has {len(block.names)} outputs {block.names}, of which the model "
            f"reads {[block.names[i] for i in covariates]} besides its observations; new data "
            f"gave {len(values)} arrays. Give one array per output, or one per output read."
        )
    return _fill(block, dict(zip(covariates, values)))


def _fill(block: DataBlock, outputs: dict[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    lengths = {len(v) for v in outputs.values()}
    if len(lengths) != 1:
        raise ValueError(f"New data arrays have different numbers of rows: {sorted(lengths)}.")
    rows = lengths.pop()
    values = []
    for i, placeholder in enumerate(block.placeholders):
        if i in outputs:
            # Not np.asarray(..., dtype): it drops imaginary parts and truncates 0.75 to 0.
            value = cast_exactly(
                np.asarray(outputs[i]),
                np.dtype(placeholder.dtype),
                f"New data for {block.names[i]!r}",
                f"Give values that the model's dtype {placeholder.dtype} holds exactly.",
            )
            if value.shape[1:] != block.row_shapes[i]:
                raise ValueError(
                    f"New data for {block.names[i]!r} has rows of shape {value.shape[1:]}, but "
                    f"the model's have {block.row_shapes[i]}."
                )
        else:  # observed only: its values do not enter predictions
            value = np.zeros((rows, *block.row_shapes[i]), dtype=placeholder.dtype)
        values.append(value)
    return tuple(values)


def rows_model(
    model: Model | None = None,
    *,
    rows=None,
    data=None,
    seed=None,
) -> Model:
    """A copy of a minibatched model whose data are the given rows, held in memory.

    Each streamed (or minibatched) output becomes a ``pm.Data`` holding the rows, named as the
    minibatch variable (``X_mb.name``), and observations are no longer scaled by ``total_size``.
    The copy is an ordinary in-memory PyMC model: ``pm.sample_posterior_predictive``,
    ``pm.compute_log_likelihood``, ``pm.compute_deterministics``, ``pm.set_data`` and
    ``approx.sample`` (inside ``with copy:``) all work on it, and their results say which rows
    they hold: observed data and data variables have a first dimension of rows (``"row"``, or
    the first dim the model gives the observed variable), whose coordinate is the row numbers
    in the dataset.

    Parameters
    ----------
    model : Model, optional
        A model reading ``pm.Minibatch`` (streaming or in memory). Taken from the context if
        omitted.
    rows : int or array of int, optional
        Rows of the dataset: a number of rows chosen at random (without replacement, seeded by
        ``seed``), or row numbers. They are read in one pass at most (arrays in memory are
        gathered).
    data : array, tuple of arrays, or dict, optional
        New rows instead, as ``pm.set_data`` would give them: one array per output of the
        stream, or one per output the model reads besides its observations (those are then
        zeros, as they do not enter predictions); or a dict from minibatch variables (or their
        names) to arrays. Their row coordinate counts from 0.
    seed : int, optional
        Seeds the choice of ``rows`` when it is a number.

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        If neither or both of ``rows`` and ``data`` are given, or the rows are out of range.
    StreamingNotSupportedError
        If the model reads no minibatch, or reads a one-shot iterator and rows must be read.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.rows import rows_model
    >>> x = np.arange(1_000.0)
    >>> with pm.Model() as model:
    ...     x_mb = pm.Minibatch(x, batch_size=10, streaming=True)
    ...     obs = pm.Normal("x", pm.Normal("mu"), 1, observed=x_mb)
    >>> copy = rows_model(model, rows=[3, 998])
    >>> copy["x"].owner is None, copy.rvs_to_values[copy["x"]].get_value()
    (False, array([  3., 998.]))
    >>> copy.coords["row"]
    (np.int64(3), np.int64(998))
    """
    if (rows is None) == (data is None):
        raise ValueError(
            "Give either rows= (rows of the dataset to read) or data= (new rows), not "
            f"{'both' if rows is not None else 'neither'}."
        )
    full_model, blocks = data_blocks(model)
    if data is not None:
        bound = _bind(blocks, data)
        coords = {b: np.arange(len(values[0])) for b, values in bound.items()}
    else:
        bound, coords = {}, {}
        for b, block in enumerate(blocks):
            chosen = as_rows(rows, block.num_rows, seed=seed)
            bound[b], coords[b] = read_rows(block, chosen), chosen
    return holding_rows(full_model, blocks, bound, coords)
