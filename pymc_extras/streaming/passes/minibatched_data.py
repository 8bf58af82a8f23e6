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
"""Full-data models: a minibatched model's data as inputs of any length, read in chunks."""

import contextlib
import functools

from collections.abc import Generator, Iterator, Sequence
from typing import cast

import numpy as np
import pytensor.tensor as pt

from pymc.data import MinibatchOp  # series: pathfinder-in-memory-minibatch
from pymc.exceptions import StreamingNotSupportedError
from pymc.model import Model, modelcontext
from pymc.model.fgraph import ModelObservedRV
from pymc.model.transform.basic import remove_minibatched_nodes
from pymc.model.transform.optimization import freeze_dims_and_data
from pymc.streaming.casting import cast_exactly
from pymc.streaming.prefetch import Exhausted, Failed, Prefetcher
from pymc.streaming.sources import ArraySource, BlockSource, Chunk, Source
from pymc.streaming.stream import StreamBuffer
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Apply, Constant, Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.op import Op
from pytensor.graph.traversal import ancestors
from pytensor.tensor.shape import Shape, Shape_i
from pytensor.tensor.subtensor import Subtensor
from pytensor.tensor.type import TensorType

__all__ = ["data_chunks", "full_data_model", "reads_minibatched_data"]

PASS_CHUNK_ROWS = 65_536
"""Most rows in one chunk of a pass over a source that is not an array in memory. A larger
block (a Parquet row group of pyarrow's default 1,048,576 rows) is read in pieces of this many
rows where the source can split its blocks (``BlockSource.splits_blocks``), and cut into such
pieces otherwise. Memory: 65,536 rows of 11 float64 columns are 5.8 MB a chunk."""

READ_AHEAD = 2
"""Chunks of at most ``PASS_CHUNK_ROWS`` rows that a background thread reads ahead during a
pass over a source that is not an array in memory (files, iterables), so that reading overlaps
evaluation. Memory: two such chunks (11.5 MB for 11 float64 columns), plus the one being read;
a block that cannot be read in pieces is held whole while it is cut up."""


class MinibatchedData:
    """Data that the model reads through minibatches: one stream, or one ``pm.Minibatch`` call.

    In the full-data model, each output of its source is a placeholder: an input of any number
    of rows, fed chunk by chunk. ``full`` holds the full data of an in-memory ``pm.Minibatch``
    (its inputs), and is None for a stream.
    """

    def __init__(self, key, variables: Sequence[Variable], full: Sequence[Variable] | None):
        self.key = key
        self.placeholders = [_rows_of_any_number(var) for var in variables]
        self._full = full
        # What a row of each looks like: a model shaped by its data (``shape=X_mb.shape[1]``)
        # reads it, and no pass is running when the full-data model's parameters are sized.
        self.row_shapes = [_row_shape(var) for var in (variables if full is None else full)]

    def source(self) -> Source:
        if self._full is None:  # a stream
            stream = self.key
            if not stream.source.restartable:
                raise StreamingNotSupportedError(
                    f"Stream {stream.name!r} reads a one-shot iterator ({stream.source!r}), "
                    "which cannot be read again, and a full-data evaluation passes over the "
                    "data many times (Pathfinder: once per L-BFGS evaluation). Pass a list, a "
                    "re-iterable, a zero-argument function returning a fresh iterator, or arrays."
                )
            return stream.source
        # Data held in the graph (an in-memory pm.Minibatch): its full data, read in chunks.
        return ArraySource([np.asarray(var.eval()) for var in self._full])

    @property
    def num_rows(self) -> int | None:
        """The rows every pass must read: a stream's count or ``total_size``; None in memory.

        The full data of an in-memory ``pm.Minibatch`` is its source's, which counts itself.
        """
        return None if self._full is not None else self.key.num_rows


def _rows_of_any_number(var: Variable) -> Variable:
    """An input like ``var`` (its dtype and dimensions), with any number of rows."""
    var_type = cast(TensorType, var.type)
    shape = (None,) * var_type.ndim
    return TensorType(var_type.dtype, shape=shape)(name=f"{var.name or 'data'}.chunk")


def _row_shape(var: Variable) -> tuple[int, ...]:
    """The shape of one row of ``var``'s value: a stream buffer's, or in-memory data's."""
    if isinstance(var, SharedVariable):
        return tuple(np.shape(var.get_value(borrow=True))[1:])
    return tuple(np.shape(var.eval())[1:])


def _row_shape_reads(fgraph: FunctionGraph, data: Variable, row_shape: tuple[int, ...]) -> dict:
    """Constants for the reads of ``data``'s row shape in ``fgraph`` (``X_mb.shape[1]``).

    The number of rows, ``X_mb.shape[0]``, is a batch size and stays a read of the input.
    """
    found = {}
    for node, _ in fgraph.clients.get(data, []):
        if not isinstance(node, Apply):
            continue
        if isinstance(node.op, Shape_i) and node.op.i >= 1:
            found[node.outputs[0]] = pt.constant(row_shape[node.op.i - 1], dtype="int64")
        elif isinstance(node.op, Shape):
            for read, _ in fgraph.clients.get(node.outputs[0], []):
                index = _constant_index(read)
                if index is not None:
                    index %= len(row_shape) + 1  # shape[-1] is the last column count
                if index is not None and index >= 1:
                    found[read.outputs[0]] = pt.constant(row_shape[index - 1], dtype="int64")
    return found


def _constant_index(node: Apply | str) -> int | None:
    """The index ``k`` of ``shape[k]``, if ``node`` takes one constant element of a shape."""
    if not isinstance(node, Apply) or not isinstance(node.op, Subtensor) or len(node.inputs) != 2:
        return None
    index = node.inputs[1]
    if not isinstance(index, Constant) or np.ndim(index.data) != 0:
        return None
    return int(index.data)


@functools.singledispatch
def _minibatched_outputs(op: Op, node: Apply) -> tuple[list[Variable], list[Variable]] | None:
    """The minibatch outputs of a node that draws them from data in the graph, and that data.

    None for any other node (the default); register an Op that draws minibatches.
    """
    return None


# series: pathfinder-in-memory-minibatch: begin
@_minibatched_outputs.register(MinibatchOp)
def _in_memory_minibatch(op: MinibatchOp, node: Apply) -> tuple[list[Variable], list[Variable]]:
    """Upstream's in-memory ``pm.Minibatch``: its inputs hold the full data of its outputs.

    Its last input and output are the random generator that draws the rows.
    """
    return node.outputs[:-1], node.inputs[:-1]


# series: pathfinder-in-memory-minibatch: end
def minibatched_data(graphs: Sequence[Variable]) -> dict[Variable, tuple[MinibatchedData, int]]:
    """The streamed or minibatched data variables in ``graphs``: what they read, which output."""
    groups: dict[object, MinibatchedData] = {}
    found: dict[Variable, tuple[MinibatchedData, int]] = {}
    for var in ancestors(list(graphs)):
        if isinstance(var, StreamBuffer):
            stream = var.stream
            if id(stream) not in groups:
                groups[id(stream)] = MinibatchedData(stream, stream.buffers, None)
            found[var] = (groups[id(stream)], var.output)
        elif var.owner is not None:
            node = var.owner
            drawn = _minibatched_outputs(node.op, node)
            if drawn is not None and var in drawn[0]:
                if node not in groups:
                    groups[node] = MinibatchedData(node, *drawn)
                found[var] = (groups[node], drawn[0].index(var))
    return found


def full_data_model(model: Model) -> tuple[Model, dict[Variable, MinibatchedData]]:
    """Copy ``model``, its minibatched data made inputs of any number of rows, observed unscaled.

    PyMC's ``remove_minibatched_nodes``, with the data replaced by those inputs instead of the
    full data that an in-memory ``pm.Minibatch`` holds, and the observations that read it freed
    of their ``total_size`` scaling. ``model`` is left unchanged.

    Returns the copy and those inputs, each with the data it stands for.
    """
    found: dict[Variable, tuple[MinibatchedData, int]] = {}

    def replace_data(fgraph: FunctionGraph, replacements: dict) -> dict:
        found.update(minibatched_data(fgraph.outputs))
        for node in list(fgraph.toposort()):
            rv = node.inputs[0] if isinstance(node.op, ModelObservedRV) else None
            if rv is not None and isinstance(rv.owner.op, MinibatchRandomVariable):
                if minibatched_data(node.inputs[:2]):  # observes minibatched data: unscaled
                    fgraph.replace(rv, rv.owner.inputs[0], import_missing=True)
        placeholders = {var: member.placeholders[i] for var, (member, i) in found.items()}
        shapes = {}
        for var, (member, i) in found.items():
            shapes.update(_row_shape_reads(fgraph, var, member.row_shapes[i]))
        return {**replacements, **shapes, **placeholders}

    full_model = remove_minibatched_nodes(_without_initial_values(model), replace_data)
    if not found:
        raise StreamingNotSupportedError(
            "The model reads no pm.Minibatch (streaming or in memory), so it has no data to "
            "pass over. Use its own logp (model.compile_logp) instead."
        )
    members = {id(member): member for member, _ in found.values()}.values()
    return full_model, {p: member for member in members for p in member.placeholders}


def _without_initial_values(model: Model) -> Model:
    """``model`` itself, or a copy of it without initial values if it has some.

    ``fgraph_from_model``, and so ``remove_minibatched_nodes``, refuses initial values, which
    play no part in a log density. PyMC's own ``freeze_dims_and_data`` carries them over to a
    copy (freezing nothing here), from which they are dropped: that copy is ours to change.
    """
    if all(value is None for value in model.rvs_to_initial_values.values()):
        return model
    copy = freeze_dims_and_data(model, dims=[], data=[])
    copy.rvs_to_initial_values.update(dict.fromkeys(copy.rvs_to_initial_values))
    return copy


def reads_minibatched_data(model: Model | None = None) -> bool:
    """Whether ``model``'s log density reads a streaming or in-memory ``pm.Minibatch``."""
    model = modelcontext(model)
    return bool(minibatched_data(model.observed_RVs + model.potentials))


def data_chunks(
    source: Source, placeholders: Sequence[Variable], *, rows: int = PASS_CHUNK_ROWS
) -> Generator[Chunk]:
    """One pass over ``source`` in chunks of at most ``rows`` rows, cast to the placeholders' dtypes.

    Arrays in memory are read in the main thread, in the source's own slices. Any other source
    is read, and cast, ``READ_AHEAD`` chunks ahead by a background thread, which stops when the
    generator is closed: close it (``contextlib.closing``) so that no thread outlives a pass
    that fails. A block source that can split its blocks (a Parquet file) is read a piece of
    ``rows`` rows at a time, so memory is bounded by rows, never by the size of a row group;
    the chunks of other sources are cut to ``rows`` rows (views, no copy).
    """
    dtypes = [np.dtype(cast(TensorType, p.type).dtype) for p in placeholders]
    if isinstance(source, ArraySource) and source.gathers_rows:
        for chunk in source.chunks():
            yield _cast(chunk, dtypes)
        return
    pieces = _pieces(source, rows)
    # Cast in the reader thread too: the thread that evaluates gets chunks ready to use.
    reader = Prefetcher(
        (_cast(piece, dtypes) for piece in pieces), depth=READ_AHEAD, name="pymc-full-data-pass"
    )
    try:
        while True:
            item = reader.get()
            if isinstance(item, Exhausted):
                return
            if isinstance(item, Failed):
                raise item.error
            yield item
    finally:
        reader.stop()
        pieces.close()  # the thread has ended: close the block being read, and its file


def _cast(chunk: Chunk, dtypes: Sequence[np.dtype]) -> Chunk:
    """``chunk`` in the model's dtypes; refused where a value would change (floats may round)."""
    return tuple(
        cast_exactly(
            np.asarray(part),
            np.dtype(dtype),
            f"output {i} of the data",
            "Give data of the dtype the model's data has, or values that fit it.",
        )
        for i, (part, dtype) in enumerate(zip(chunk, dtypes))
    )


def split_chunk(chunk: Chunk, rows: int) -> Iterator[Chunk]:
    """``chunk`` in consecutive views of at most ``rows`` rows (one empty chunk stays one)."""
    size = len(chunk[0])
    if size <= rows:
        yield chunk
        return
    for start in range(0, size, rows):
        yield tuple(part[start : start + rows] for part in chunk)


def _pieces(source: Source, rows: int) -> Generator[Chunk]:
    """The chunks of one pass over ``source``, none of more than ``rows`` rows."""
    if not isinstance(source, BlockSource):
        for chunk in source.chunks():
            yield from split_chunk(chunk, rows)
        return
    for index, count in enumerate(source.block_rows):
        if not count:
            continue
        if source.splits_blocks:
            with contextlib.closing(source.iter_block(index, rows)) as block:
                yield from block
        else:
            yield from split_chunk(source.read_block(index), rows)
