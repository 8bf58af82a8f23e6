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
"""Blocks: many steps of a fitting loop in one compiled call, over a block of batches.

A training step compiled for a fitting loop reads fed data (:class:`FedSharedVariable`) and
updates shared variables: parameters, optimizer state, random generators. Calling it once per
step costs far more than the arithmetic of a small model's step (the call's entry and exit, the
buffer refresh). :func:`compile_blocks` compiles K steps into one call instead: a
``pytensor.scan`` over the step's graph, with a :class:`BlockBuffer` of shape
``(K, *batch shape)`` in place of each fed variable, and every updated shared variable carried
from step to step. One call of the :class:`BlockFunction` leaves the shared variables as K calls
of the one-step function on the same K batches would (up to rounding: the compiled loop may
order floating-point operations differently), and returns the K steps' outputs.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

from pytensor.compile import Function
from pytensor.compile.mode import Mode
from pytensor.compile.rebuild import rebuild_collect_shared
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomType

from pymc.data_feed.feeds import DataFeed, FedSharedVariable
from pymc.data_feed.guard import StepsPerCall, requested_steps_per_call

__all__ = [
    "BLOCK_BYTES",
    "MAX_STEPS_PER_CALL",
    "MAX_STEPS_PER_CALL_JAX",
    "BlockBuffer",
    "BlockFunction",
    "choose_steps_per_call",
    "compile_blocks",
]

BLOCK_BYTES = 8 * 2**20
"""Bytes of batches one block holds at most when K is chosen automatically: 8 MiB, 256 batches
of 256 rows of 16 float64 columns. A fit holds one block, and a reader thread queues a few."""

MAX_STEPS_PER_CALL = 256
"""Most steps per call chosen automatically: beyond it, a call's fixed cost is already small."""

MAX_STEPS_PER_CALL_JAX = 64
"""Most steps per call chosen automatically on JAX, which copies the whole block at every call
and compiles a longer loop more slowly."""


class BlockBuffer(FedSharedVariable):
    """The batches of one fed variable for the steps of a block, stacked on a new first axis.

    A :class:`BlockFunction` reads step ``j``'s batch of :attr:`fed` from row ``j`` of this
    buffer. Its first axis is left open, so a last block may hold fewer batches.

    Attributes
    ----------
    fed : FedSharedVariable
        The variable whose batches it stacks.
    """

    fed: FedSharedVariable


def _backend(mode: Mode) -> str:
    """``"numba"``, ``"jax"`` or ``"c"`` (PyTensor's virtual machine, with or without C)."""
    names = {cls.__name__ for cls in type(mode.linker).__mro__}
    if "NumbaLinker" in names:
        return "numba"
    if "JAXLinker" in names:
        return "jax"
    if "VMLinker" in names:
        return "c"
    return type(mode.linker).__name__


def choose_steps_per_call(
    request: StepsPerCall, fed: Sequence[FedSharedVariable], mode: Mode
) -> int:
    """The steps per call of a block function: ``request``, or chosen when it is ``"auto"``.

    The automatic choice is the largest power of two whose block of batches fits in
    :data:`BLOCK_BYTES`, at most :data:`MAX_STEPS_PER_CALL` on Numba (PyTensor's default
    backend) and :data:`MAX_STEPS_PER_CALL_JAX` on JAX, where each call has a large fixed cost.
    On the C backend it is 1: PyTensor's C loop (``scan``) costs more per step than a call.
    """
    if request is None:
        return 1
    if request != "auto":
        return int(request)
    backend = _backend(mode)
    if backend == "numba":
        steps = MAX_STEPS_PER_CALL
    elif backend == "jax":
        steps = MAX_STEPS_PER_CALL_JAX
    else:
        return 1
    step_bytes = sum(np.asarray(var.get_value(borrow=True)).nbytes for var in fed)
    while steps > 1 and steps * step_bytes > BLOCK_BYTES:
        steps //= 2
    return steps


def compile_blocks(
    inputs: Any, outputs: Any, rng_updates: Mapping, mode: Mode, kwargs: Mapping[str, Any]
) -> Any:  # a BlockFunction or None: it stands in for the Function that compile returns
    """Compile a training step as a :class:`BlockFunction`, if a fitting loop asked for one.

    :func:`pymc.pytensorf.compile` calls this with its arguments before it compiles. Inside
    ``feeding_data(steps_per_call=K)`` (or ``"auto"``), a function with no inputs, reading fed
    data and given ``updates`` is a fitting loop's training step: it is compiled to run K steps
    per call (chosen by :func:`choose_steps_per_call` for ``"auto"``). Otherwise, or when that
    gives 1, this returns None and ``compile`` compiles the function as usual; so it does for a
    step that draws from a random generator it does not update (``compile`` updates those of
    the outputs: ``pm.fit(score=False)`` leaves those of ADVI's draws as they are, so every step
    draws the same numbers, which a loop over steps would not reproduce).

    Parameters
    ----------
    inputs, outputs
        As given to ``compile``: no inputs; one output variable, a list of them, or none.
    rng_updates : dict
        The random generators' updates that ``compile`` collected (and reseeded).
    mode : Mode
        The mode ``compile`` compiles with, its rewrites included.
    kwargs : dict
        The other keywords given to ``compile``: ``updates``, and what goes to
        ``pytensor.function``.
    """
    request = requested_steps_per_call()
    updates = kwargs.get("updates")
    if request in (None, 1) or inputs or not updates or "givens" in kwargs:
        return None
    single = isinstance(outputs, Variable)
    outs = [outputs] if single else list(outputs or [])
    if not all(isinstance(out, Variable) for out in outs):
        return None  # pytensor.Out and the like: not a fitting loop's step
    # The generators carried from step to step are those the one-step function updates: the
    # ones compile collected from the outputs.
    new = {**rng_updates, **dict(updates)}
    # In the order the one-step function would hold them, so that the compiled loop's
    # input_storage lists its generators in the same order: callers reseed them in that order.
    _, _, (_, _, _, one_step_inputs) = rebuild_collect_shared(outputs, updates=list(new.items()))
    order = {var: i for i, var in enumerate(one_step_inputs)}
    state = sorted(new, key=lambda var: order.get(var, len(order)))
    new_values = [
        new[var]
        if isinstance(var.type, RandomType)
        # the conversion pytensor.function applies to an update
        else var.type.filter_variable(new[var], allow_convert=True)
        for var in state
    ]
    graph = list(ancestors([*outs, *new_values]))
    fed = [var for var in graph if isinstance(var, FedSharedVariable)]
    if not fed or any(
        isinstance(var, SharedVariable) and isinstance(var.type, RandomType) and var not in new
        for var in graph
    ):
        # A generator compile left without an update (its draws feed only the updates, as with
        # pm.fit's score=False) gives every call of the one-step function the same numbers; a
        # loop could not keep that and carry the others. Such a step runs one step per call.
        return None
    # Clones of a fed variable share its value: one block serves them all.
    clones: dict[int, list[FedSharedVariable]] = {}
    for var in fed:
        clones.setdefault(id(var.container), []).append(var)
    readers = list(clones.values())
    steps = choose_steps_per_call(request, [group[0] for group in readers], mode)
    if steps == 1:
        return None
    fixed_length = _backend(mode) not in ("numba", "c")  # e.g. JAX: lax.scan needs a length
    # JAX compiles the loop for the block in the buffer when first called: a full one.
    rows = steps if fixed_length else 1
    blocks = {group[0]: _block_buffer(group[0], rows) for group in readers}

    def one_step(*args):
        batches, current = args[: len(readers)], args[len(readers) :]
        replace = {var: batch for group, batch in zip(readers, batches) for var in group}
        replace.update(zip(state, current))
        return graph_replace([*outs, *new_values], replace, strict=False)

    results = pytensor.scan(
        one_step,
        sequences=list(blocks.values()),
        outputs_info=[*([None] * len(outs)), *state],
        n_steps=steps if fixed_length else None,
        return_updates=False,
        return_list=True,
    )
    per_step, traces = results[: len(outs)], results[len(outs) :]
    # A generator's state leaves scan as its last value; other states as all of them.
    final = [
        trace if isinstance(var.type, RandomType) else trace[-1]
        for var, trace in zip(state, traces)
    ]
    options = {key: value for key, value in kwargs.items() if key != "updates"}
    function = pytensor.function(
        [], per_step, updates=dict(zip(state, final)), mode=mode, **options
    )
    return BlockFunction(
        function,
        blocks,
        steps_per_call=steps,
        fixed_length=fixed_length,
        single_output=single,
        one_step=(outputs, new, mode, options),
    )


def _block_buffer(fed: FedSharedVariable, rows: int) -> BlockBuffer:
    """A block buffer for ``fed``, holding its current batch ``rows`` times until fed."""
    value = np.asarray(fed.get_value(borrow=True))
    block = BlockBuffer(
        type=pt.TensorType(fed.dtype, shape=(None, *fed.type.shape)),
        value=np.repeat(value[None], rows, axis=0),
        strict=False,
        name=f"{fed.name}.block",
    )
    block.data_feed = fed.data_feed
    block.fed = fed
    return block


def _rng_containers(function: Function) -> dict[Variable, Any]:
    """The storage of each random generator a function reads, by the generator's variable."""
    return {
        put.variable: container
        for put, container in zip(function.maker.inputs, function.input_storage)
        if isinstance(put.variable.type, RandomType)
    }


class BlockFunction:
    """A fitting loop's step compiled to run many steps per call, over a block of batches.

    Made by :func:`pymc.pytensorf.compile` inside ``feeding_data(steps_per_call=...)``
    (through :func:`compile_blocks`), and driven by :meth:`DataFeeds.step`, which asks the feeds
    for a block of batches (:meth:`DataFeed.before_block`) and calls it once per block. It
    reads the block buffers instead of the fed variables, and updates the same shared variables
    as the one-step function: parameters, optimizer state and random generators are those after
    the block's steps, and its ``input_storage`` holds the generators, as the one-step
    function's does (to reseed them).

    Attributes
    ----------
    function : pytensor.compile.function.types.Function
        The compiled loop: no inputs, each output stacked over the steps.
    blocks : dict
        The :class:`BlockBuffer` of each fed variable the step reads.
    steps_per_call : int
        Steps of a full block.
    fixed_length : bool
        Whether the compiled loop runs exactly ``steps_per_call`` steps (JAX). A shorter block
        then runs one step per call, through a one-step function compiled when first needed.
    """

    def __init__(
        self,
        function: Function,
        blocks: dict[FedSharedVariable, BlockBuffer],
        *,
        steps_per_call: int,
        fixed_length: bool,
        single_output: bool,
        one_step: tuple,
    ):
        self.function = function
        self.blocks = blocks
        self.steps_per_call = steps_per_call
        self.fixed_length = fixed_length
        self._single_output = single_output
        self._one_step_graph = one_step
        self._one_step: Function | None = None

    @property
    def maker(self):
        return self.function.maker

    @property
    def input_storage(self):
        return self.function.input_storage

    def __getattr__(self, name: str):
        # The rest of a pytensor Function's interface (profile, vm, ...): the compiled loop's.
        if name == "function":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.function, name)

    def blocks_of(self, feed: DataFeed) -> dict[FedSharedVariable, BlockBuffer]:
        """The block buffers of the variables that ``feed`` fills."""
        return {var: block for var, block in self.blocks.items() if var.data_feed is feed}

    def __call__(self, steps: int | None = None):
        """Run ``steps`` steps on the first batches of the blocks (default: all they hold).

        Returns
        -------
        numpy.ndarray, list of numpy.ndarray, or None
            Each output of the step, stacked over the steps: one array if the step has one
            output, a list if it was compiled with a list, None without outputs.
        """
        held = min(len(block.container.storage[0]) for block in self.blocks.values())
        steps = held if steps is None else int(steps)
        if not 0 < steps <= held:
            raise ValueError(f"The blocks hold {held} batches; cannot run {steps} steps.")
        if self.fixed_length and steps != self.steps_per_call:
            results = self._one_by_one(steps)
        else:
            for block in self.blocks.values():
                value = block.container.storage[0]
                if len(value) != steps:
                    block.container.storage[0] = value[:steps]
            results = [np.asarray(result) for result in self.function()]
        if not results:
            return None
        return results[0] if self._single_output else results

    def _one_by_one(self, steps: int) -> list[np.ndarray]:
        """Run the blocks' first ``steps`` batches through the one-step function, one per call."""
        if self._one_step is None:
            outputs, updates, mode, options = self._one_step_graph
            self._one_step = pytensor.function([], outputs, updates=updates, mode=mode, **options)
        one_step = self._one_step
        # JAX keeps a copy of the generators per function: carry them over and back.
        mine, its = _rng_containers(self.function), _rng_containers(one_step)
        shared = [var for var in mine if var in its]
        for var in shared:
            its[var].storage[0] = mine[var].storage[0]
        outputs = []
        try:
            for j in range(steps):
                for var, block in self.blocks.items():
                    var.container.storage[0] = block.container.storage[0][j]
                result = one_step()
                outputs.append(result if isinstance(result, list) else [result])
        finally:
            for var in shared:
                mine[var].storage[0] = its[var].storage[0]
        return [np.stack([np.asarray(out[i]) for out in outputs]) for i in range(len(outputs[0]))]

    def __repr__(self) -> str:
        return f"BlockFunction(steps_per_call={self.steps_per_call}, fed={list(self.blocks)})"
