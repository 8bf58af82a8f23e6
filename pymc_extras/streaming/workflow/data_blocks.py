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
"""A minibatched model's data as blocks of rows: which rows, read, and held in a copy.

The layer under the workflow's steps (:mod:`.rows`, :mod:`.pointwise`, :mod:`.loo`,
:mod:`.predictive_passes`): it calls the full-data passes below it, never a step above it.
"""

import contextlib
import numbers

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc.data_feed.guard import values_read_by
from pymc.model import Model, modelcontext
from pymc.model.fgraph import (
    ModelObservedRV,
    fgraph_from_model,
    model_from_fgraph,
    model_named,
    model_observed_rv,
)
from pymc.streaming.sources import Chunk, Source
from pymc.streaming.stream import Stream
from pytensor.graph.basic import Variable
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.scalar import Cast
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.shape import Shape_i
from pytensor.tensor.variable import TensorVariable

from pymc_extras.streaming.passes.minibatched_data import (
    MinibatchedData,
    data_chunks,
    full_data_model,
)

__all__ = ["choose_rows"]

ROW_DIM = "row"
"""Name of the dimension of rows in the copies of a model that hold rows in memory, when the
model names none. Its coordinate holds the row numbers in the dataset (0 is the first row)."""


@dataclass
class DataBlock:
    """Data that a model reads through one stream (or one in-memory ``pm.Minibatch`` call).

    Attributes
    ----------
    member : MinibatchedData
        What the full-data model reads: its placeholders, one per output, and its source.
    names : list of str
        The name of each output in the model (the minibatch variable's name), used for the
        ``pm.Data`` that hold its rows in a copy of the model.
    observed_only : list of bool
        Whether each output is only ever observed (``observed=y_mb``), never read by the rest of
        the model: it is not needed to predict, and new data may leave it out.
    row_shapes : list of tuple of int
        The shape of one row of each output.
    row_dim : str
        The dimension of rows in copies of the model.
    """

    member: MinibatchedData
    names: list[str]
    observed_only: list[bool]
    row_shapes: list[tuple[int, ...]]
    row_dim: str = ROW_DIM

    @property
    def placeholders(self) -> list[TensorVariable]:
        return cast(list[TensorVariable], self.member.placeholders)

    @property
    def num_rows(self) -> int | None:
        """Rows in the dataset, when the source (or the stream's ``total_size``) tells."""
        key = self.member.key
        return key.num_rows if isinstance(key, Stream) else self.member.source().num_rows

    def source(self) -> Source:
        return self.member.source()

    def covariates(self) -> list[int]:
        """The outputs the rest of the model reads: what new data must provide."""
        return [i for i, only in enumerate(self.observed_only) if not only]


def _names(member: MinibatchedData, index: int) -> list[str]:
    """The outputs' names: the stream's buffers' (``X_mb.name``), or ``minibatch<k>.<i>``."""
    key = member.key
    if isinstance(key, Stream):
        return [str(buffer.name) for buffer in key.buffers]
    return [f"minibatch{index}.{i}" for i in range(len(member.placeholders))]


def data_blocks(model: Model | None = None) -> tuple[Model, list[DataBlock]]:
    """The full-data model of ``model`` and the data it reads, one block per stream.

    The full-data model is :func:`pymc_extras.streaming.passes.minibatched_data.full_data_model`'s: streamed
    data become placeholders of any number of rows, observed unscaled.
    """
    model = modelcontext(model)
    full_model, found = full_data_model(model)
    members = list({id(member): member for member in found.values()}.values())
    read_elsewhere = values_read_by(
        full_model.basic_RVs + full_model.deterministics + full_model.potentials
    )
    observed_values = {
        data
        for rv in full_model.observed_RVs
        for data in _through_casts(full_model.rvs_to_values[rv])
    }
    blocks = []
    user_dims = _observed_row_dims(full_model)
    for index, member in enumerate(members):
        names = _names(member, index)
        only = [p in observed_values and p not in read_elsewhere for p in member.placeholders]
        shapes = [spec.row_shape for spec in member.source().specs]
        dims = {user_dims[p] for p in member.placeholders if p in user_dims}
        default = ROW_DIM if len(members) == 1 else f"{ROW_DIM}{index}"
        row_dim = dims.pop() if len(dims) == 1 else default
        blocks.append(DataBlock(member, names, only, shapes, row_dim))
    return full_model, blocks


def _through_casts(data: Variable) -> list[Variable]:
    """Observed data, and the data it was cast from.

    PyMC casts integer observations to the type of a discrete variable: int64 data observed by
    a Bernoulli become int32.
    """
    found = [data]
    while (
        data.owner is not None
        and isinstance(data.owner.op, Elemwise)
        and isinstance(data.owner.op.scalar_op, Cast)
    ):
        data = data.owner.inputs[0]
        found.append(data)
    return found


def _observed_row_dims(model: Model) -> dict[Variable, str]:
    """Observed data given directly as a minibatch, with the first dim the user named for it."""
    found = {}
    for rv in model.observed_RVs:
        dims = model.named_vars_to_dims.get(rv.name)
        if dims and dims[0] is not None:
            found[model.rvs_to_values[rv]] = dims[0]
    return found


def choose_rows(num_rows: int, size: int, *, seed=None) -> np.ndarray:
    """A simple random sample of ``size`` row numbers out of ``num_rows``, without replacement.

    The same rows as ``arviz_stats.loo_subsample(observations=size, seed=seed)`` draws for a
    dataset of ``num_rows`` observations, sorted.

    Parameters
    ----------
    num_rows : int
        Rows in the dataset.
    size : int
        Rows to choose, from 1 to ``num_rows``.
    seed : int, optional
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    ndarray of int64
        Sorted row numbers.

    Raises
    ------
    ValueError
        If ``size`` is not between 1 and ``num_rows``.

    Examples
    --------
    >>> from pymc_extras.streaming.workflow.data_blocks import choose_rows
    >>> choose_rows(1_000_000, 5, seed=315)
    array([108028, 528423, 638606, 785485, 881408])
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"The number of rows to choose must be an integer, got {size!r}.")
    if not 1 <= size <= num_rows:
        raise ValueError(
            f"Cannot choose {size} rows out of {num_rows}: choose between 1 and {num_rows}."
        )
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=int(size), replace=False))


def as_rows(rows, num_rows: int | None, *, seed=None) -> np.ndarray:
    """Row numbers from a count (a random sample) or from given row numbers, sorted, unique.

    Raises
    ------
    TypeError
        If ``rows`` is neither a count nor a 1-D array of integers.
    ValueError
        If a row is out of range, or rows are to be chosen from a source of unknown size.
    """
    if isinstance(rows, numbers.Integral) and not isinstance(rows, bool):
        if num_rows is None:
            raise ValueError(
                "The source cannot tell its number of rows, so rows cannot be chosen at random "
                "from it. Give row numbers (an array of integers), or a source that knows its "
                "size."
            )
        return choose_rows(num_rows, int(rows), seed=seed)
    array = np.asarray(rows)
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
        raise TypeError(
            "rows must be a number of rows to choose at random, or a non-empty 1-D array of row "
            f"numbers (integers), got {type(rows).__name__} {array.dtype} of shape {array.shape}."
        )
    unique = np.unique(array.astype(np.int64))
    if unique[0] < 0 or (num_rows is not None and unique[-1] >= num_rows):
        bound = "" if num_rows is None else f" and below {num_rows}"
        raise ValueError(
            f"Row numbers must be at least 0{bound} (the rows in the dataset), got "
            f"{unique[0]} to {unique[-1]}."
        )
    return unique


class RowPicker:
    """Collects given rows out of the chunks of one pass, in bounded memory."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self._found: list[Chunk] = []
        self._count = 0

    def offer(self, start: int, chunk: Chunk) -> None:
        """Keep the wanted rows of ``chunk``, whose first row is row ``start`` of the data."""
        stop = start + len(chunk[0])
        first, last = np.searchsorted(self.rows, [start, stop])
        if last > first:
            local = self.rows[first:last] - start
            self._found.append(tuple(np.take(part, local, axis=0) for part in chunk))
            self._count += last - first

    def result(self, seen: int) -> Chunk:
        """The rows, in order, once a pass of ``seen`` rows is over."""
        if self._count != len(self.rows):
            raise ValueError(
                f"Rows up to {self.rows[-1]} were asked for, but the data has {seen} rows."
            )
        return tuple(np.concatenate(parts) for parts in zip(*self._found))


def read_rows(block: DataBlock, rows: np.ndarray) -> Chunk:
    """Read the given (sorted, unique) rows of a block's data: one pass at most.

    Arrays in memory are gathered directly; any other source is read once, chunk by chunk,
    keeping only the wanted rows.
    """
    source = block.source()
    dtypes = [p.dtype for p in block.placeholders]
    if source.gathers_rows:
        return tuple(np.asarray(part, dtype=d) for part, d in zip(source.take(rows), dtypes))
    picker = RowPicker(rows)
    seen = 0
    with contextlib.closing(data_chunks(source, block.placeholders)) as chunks:
        for chunk in chunks:
            picker.offer(seen, chunk)
            seen += len(chunk[0])
            if seen > rows[-1]:
                break
    return picker.result(seen)


def holding_rows(
    full_model: Model,
    blocks: Sequence[DataBlock],
    values: Mapping[int, Chunk],
    row_numbers: Mapping[int, np.ndarray],
) -> Model:
    """The full-data model with each block's placeholders replaced by ``pm.Data`` of rows.

    ``values[b]`` holds one array per output of ``blocks[b]``, and ``row_numbers[b]`` the
    coordinate of their rows.
    """
    bound, coords = values, row_numbers
    fgraph, memo = fgraph_from_model(full_model)
    all_coords = fgraph._coords  # type: ignore[attr-defined]
    dim_lengths = fgraph._dim_lengths  # type: ignore[attr-defined]

    def dims_of(name: str, shape: tuple[int, ...], row_dim: str) -> tuple[str, ...]:
        # PyMC's default names for the other axes, with coordinates, as fgraph dims need.
        dims = (row_dim, *tuple(f"{name}_dim_{axis}" for axis in range(1, len(shape))))
        for dim, length in zip(dims[1:], shape[1:]):
            all_coords.setdefault(dim, tuple(range(length)))
            dim_lengths.setdefault(dim, pt.constant(length, dtype="int64"))
        return dims

    row_dims: dict[Variable, str] = {}
    for b, block in enumerate(blocks):
        dim = block.row_dim
        all_coords[dim] = tuple(coords[b])
        dim_lengths[dim] = pt.constant(len(coords[b]), dtype="int64")
        for placeholder, name, value in zip(block.placeholders, block.names, bound[b]):
            shared = pytensor.shared(value, name=name)
            named = model_named(shared, name, *dims_of(name, value.shape, dim))
            fgraph.replace(memo[placeholder], named, import_missing=True)
            row_dims[named] = dim
    for node in list(fgraph.toposort()):
        if not isinstance(node.op, ModelObservedRV):
            continue
        rv, value = node.inputs
        data = next((data for data in _through_casts(value) if data in row_dims), None)
        if data is not None:
            dims = node.op.dims or dims_of(
                node.op.name, data.owner.inputs[0].get_value().shape, row_dims[data]
            )
            fgraph.replace(node.outputs[0], model_observed_rv(rv, value, node.op.name, *dims))
    copy = model_from_fgraph(fgraph, mutate_fgraph=True)
    _label_row_deterministics(copy, {str(var.name): dim for var, dim in row_dims.items()})
    return copy


def _label_row_deterministics(model: Model, data_dims: dict[str, str]) -> None:
    """Give 1-D deterministics with one value per row (``X_mb @ beta``) the dimension of rows.

    Their length is recognised symbolically: PyTensor's shape rewrites reduce it to the length
    of a data variable holding the rows.
    """
    for det in model.deterministics:
        if det.ndim != 1 or model.named_vars_to_dims.get(det.name):
            continue
        length = cast(Variable, rewrite_graph(det.shape[0], include=("ShapeOpt", "canonicalize")))
        node = length.owner
        if node is not None and isinstance(node.op, Shape_i) and node.op.i == 0:
            dim = data_dims.get(node.inputs[0].name)
            if dim is not None:
                model.named_vars_to_dims[det.name] = (dim,)
