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
"""Many steps of a fitting loop in one compiled call, over a block of fed batches.

A training step compiled for a fitting loop reads fed data (:class:`FedSharedVariable`) and
updates shared variables: parameters, optimizer state, random generators. Calling it once per
step costs far more than the arithmetic of a small model's step (the call's entry and exit, the
buffer refresh). A loop that asks for it (``pm.fit(..., steps_per_call=K)``) gets from
:func:`compile_steps` a :class:`BlockFunction` instead: a ``pytensor.scan`` over K copies of the
step, a :class:`BlockBuffer` of shape ``(K, *batch shape)`` in place of each fed variable, and
every updated shared variable carried from step to step. One call leaves the shared variables as
K calls of the one-step function on the same K batches would (up to rounding: the compiled loop
may order floating-point operations differently), and returns the K steps' outputs.

Callbacks of a loop that runs K steps per call would see the parameters only after each block.
They are run on blocks only if they say they can (:func:`works_on_blocks`); otherwise the loop
runs one step per call (:func:`steps_per_call_for`).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, cast

import numpy as np
import pytensor
import pytensor.tensor as pt

from pytensor.compile import Function
from pytensor.compile.mode import Mode, get_mode
from pytensor.compile.rebuild import rebuild_collect_shared
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomType

from pymc.data_feed import DataFeed, FedSharedVariable, MultiStepFunction, feeding_data
from pymc.data_feed.memory import check_memory
from pymc.pytensorf import collect_default_updates, compile, reseed_rngs

__all__ = [
    "BlockBuffer",
    "BlockFunction",
    "StepsPerCall",
    "compile_steps",
    "steps_per_call_for",
    "works_on_blocks",
]

StepsPerCall = int | Literal["auto"]
"""Steps per compiled call a fitting loop asks for: a positive integer, or ``"auto"``."""

BLOCK_BYTES = 8 * 2**20
"""Bytes of batches one block holds at most when K is chosen automatically: 8 MiB, 256 batches
of 256 rows of 16 float64 columns. A fit holds one block, and a reader thread queues a few."""

MAX_STEPS_PER_CALL = 256
"""Most steps per call chosen automatically: beyond it, a call's fixed cost is already small."""

MAX_STEPS_PER_CALL_JAX = 64
"""Most steps per call chosen automatically on JAX, which copies the whole block at every call
and compiles a longer loop more slowly."""


def works_on_blocks(callback: Callable) -> bool:
    """Whether a fitting loop's callback may run on blocks of steps.

    A loop that runs K steps per compiled call calls its callbacks once per step, in order,
    with each step's loss, but the parameters they see are those after the step's whole block.
    A callback that is fine with that says so with a true ``works_on_blocks`` attribute (a
    stopping rule that compares windows of losses, say); others, and every plain function, see
    the parameters after every step, so they make the loop run one step per call.
    """
    return getattr(callback, "works_on_blocks", False) is True


def steps_per_call_for(steps_per_call: StepsPerCall, callbacks: Sequence[Callable]) -> StepsPerCall:
    """The steps per call a fitting loop with these callbacks runs: ``steps_per_call``, or 1.

    ``"auto"`` becomes 1 when a callback does not work on blocks (:func:`works_on_blocks`),
    so that it sees exactly what it sees in a loop of one step per call.

    Raises
    ------
    ValueError
        If ``steps_per_call`` is neither a positive integer nor ``"auto"``, or asks for more
        than one step per call with a callback that needs every step.
    """
    if steps_per_call != "auto":
        if (
            isinstance(steps_per_call, bool)
            or not isinstance(steps_per_call, int | np.integer)
            or steps_per_call < 1
        ):
            raise ValueError(
                f'steps_per_call must be a positive integer or "auto", got {steps_per_call!r}.'
            )
        steps_per_call = int(steps_per_call)
    per_step = [callback for callback in callbacks if not works_on_blocks(callback)]
    if not per_step:
        return steps_per_call
    if steps_per_call == "auto" or steps_per_call == 1:
        return 1
    names = ", ".join(getattr(cb, "__qualname__", type(cb).__qualname__) for cb in per_step)
    raise ValueError(
        f"steps_per_call={steps_per_call} would run {steps_per_call} steps per compiled call, "
        f"but the callback(s) {names} would then see the parameters only after every "
        f"{steps_per_call} steps instead of after each. Leave steps_per_call at its default, "
        '"auto", which runs one step per call when a callback needs every step, or pass '
        "steps_per_call=1. A callback that can work on blocks of steps says so with "
        "works_on_blocks = True."
    )


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


def _choose_steps_per_call(
    request: StepsPerCall, fed: Sequence[FedSharedVariable], mode: Mode
) -> int:
    """``request``, or for ``"auto"`` the steps per call chosen from the backend and batch bytes.

    The automatic choice is the largest power of two whose block of batches fits in
    :data:`BLOCK_BYTES`, at most :data:`MAX_STEPS_PER_CALL` on Numba (PyTensor's default
    backend) and :data:`MAX_STEPS_PER_CALL_JAX` on JAX, where each call has a large fixed cost.
    On the C backend it is 1: PyTensor's C loop (``scan``) costs more per step than a call.
    """
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


def compile_steps(
    outputs: Variable | Sequence[Variable],
    *,
    updates: Mapping[SharedVariable, Variable],
    steps_per_call: StepsPerCall,
    random_seed: Any = None,
    mode: str | Mode | None = None,
    **kwargs: Any,
) -> "Function | BlockFunction":
    """Compile a fitting loop's training step to run ``steps_per_call`` steps per call.

    Takes what :func:`pymc.pytensorf.compile` takes for a training step: no inputs, the step's
    outputs (a loss, or none) and the ``updates`` of its parameters and optimizer state. A
    step reading fed data gets a :class:`BlockFunction` of K steps per call (K chosen by the
    backend and the bytes of a batch for ``"auto"``). Otherwise this returns what
    ``compile`` returns: for a step reading no fed data, for one step per call (C backend's
    ``"auto"``), and for a step that draws from a random generator it does not update
    (``compile`` updates those of the outputs: ``pm.fit(score=False)`` leaves those of ADVI's
    draws as they are, so every step draws the same numbers, which a loop over steps would not
    reproduce).

    Call it inside :func:`~pymc.data_feed.feeding_data`, as a loop that feeds the data.

    Parameters
    ----------
    outputs : Variable or list of Variable
        The step's outputs.
    updates : dict
        The updates of the step's shared variables.
    steps_per_call : int or "auto"
        Steps per call wanted.
    random_seed, mode, **kwargs
        As for :func:`pymc.pytensorf.compile`; the random generators are seeded as it seeds
        them for the one-step function, so both draw the same numbers.

    Raises
    ------
    ValueError
        If a block of ``steps_per_call`` batches would take more than half of the memory this
        process may use (:func:`pymc.data_feed.memory.memory_limit`).
    """
    single = isinstance(outputs, Variable)
    outs: list[Variable] = [outputs] if isinstance(outputs, Variable) else list(outputs)
    if steps_per_call == 1 or "givens" in kwargs or not all(isinstance(o, Variable) for o in outs):
        return compile([], outputs, updates=updates, random_seed=random_seed, mode=mode, **kwargs)
    # The generators carried from step to step are those the one-step function updates: the
    # ones compile collects from the outputs, and those the caller updates.
    rng_updates = collect_default_updates(outputs=outs)
    new: dict[Any, Variable] = {**rng_updates, **dict(updates)}
    # In the order the one-step function would hold them, so that the compiled loop's
    # input_storage lists its generators in the same order: callers reseed them in that order.
    _, _, (_, _, _, one_step_inputs) = rebuild_collect_shared(outs, updates=list(new.items()))
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
    # Clones of a fed variable share its value: one block serves them all.
    clones: dict[int, list[FedSharedVariable]] = {}
    for var in fed:
        clones.setdefault(id(var.container), []).append(var)
    readers = list(clones.values())
    steps = _choose_steps_per_call(steps_per_call, [group[0] for group in readers], get_mode(mode))
    step_bytes = sum(np.asarray(group[0].get_value(borrow=True)).nbytes for group in readers)
    check_memory(
        "steps_per_call",
        steps,
        steps * step_bytes,
        f"a block of {steps:,} batches of fed data, read and held at once",
        'Use a smaller steps_per_call: "auto" keeps a block within 8 MiB.',
    )
    unupdated_rng = any(
        isinstance(var, SharedVariable) and isinstance(var.type, RandomType) and var not in new
        for var in graph
    )
    if not fed or steps == 1 or unupdated_rng:
        return compile([], outputs, updates=updates, random_seed=random_seed, mode=mode, **kwargs)
    if random_seed is not False and rng_updates:
        # as compile seeds the one-step function
        reseed_rngs(cast(list[SharedVariable], list(rng_updates)), random_seed)
    fixed_length = _backend(get_mode(mode)) not in ("numba", "c")  # JAX: lax.scan needs a length
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
    function = compile(
        [], per_step, updates=dict(zip(state, final)), random_seed=False, mode=mode, **kwargs
    )
    return BlockFunction(
        function,
        blocks,
        steps_per_call=steps,
        fixed_length=fixed_length,
        single_output=single,
        one_step=(outputs, updates, mode, kwargs),
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


class BlockFunction(MultiStepFunction):
    """A fitting loop's step compiled to run many steps per call, over a block of batches.

    Made by :func:`compile_steps`, and driven by :meth:`DataFeeds.step
    <pymc.data_feed.DataFeeds.step>`: it asks the feeds for a block of batches
    (:meth:`DataFeed.before_block`), runs it in one call, and serves the block's steps one at a
    time. It reads the block buffers instead of the fed variables, and updates the same shared
    variables as the one-step function: parameters, optimizer state and random generators are
    those after the block's steps.

    Attributes
    ----------
    function : pytensor.compile.Function
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
        one_step: tuple[Any, Mapping, Any, dict[str, Any]],
    ):
        self.function = function
        self.blocks = blocks
        self.steps_per_call = steps_per_call
        self.fixed_length = fixed_length
        self._single_output = single_output
        self._one_step_graph = one_step
        self._one_step: Function | None = None
        self.reset()

    @property
    def fed_variables(self) -> tuple[FedSharedVariable, ...]:
        return tuple(self.blocks)

    @property
    def maker(self):
        """The compiled loop's ``maker``: its inputs hold the random generators."""
        return self.function.maker

    @property
    def input_storage(self):
        """The compiled loop's input storage, generators in the one-step function's order."""
        return self.function.input_storage

    def blocks_of(self, feed: DataFeed) -> dict[FedSharedVariable, BlockBuffer]:
        """The block buffers of the variables that ``feed`` fills."""
        return {var: block for var, block in self.blocks.items() if var.data_feed is feed}

    def reset(self) -> None:
        self._results: Any = None
        self._block_steps = 0
        self._served = 0
        self._first_remaining = 0

    def next_step(self, feeds: Sequence[DataFeed], remaining: int) -> Any:
        if self._served == self._block_steps:
            steps = min(self.steps_per_call, remaining)
            for feed in feeds:
                got = feed.before_block(steps, self.blocks_of(feed))
                if not 0 < got <= steps:
                    raise ValueError(
                        f"Data feed {feed.name!r} put {got} batches into a block of {steps}; "
                        "before_block returns how many it put in, from 1 to the number asked."
                    )
                steps = got  # the data ended: the steps every feed has batches for
            results = self(steps)
            self._results, self._block_steps, self._served = results, steps, 0
            self._first_remaining = remaining
        j, self._served = self._served, self._served + 1
        return self._output(j)

    def _output(self, j: int | slice) -> Any:
        results = self._results
        if results is None:
            return None
        if isinstance(results, list):
            return [result[j] for result in results]
        return results[j]

    def outputs_from(self, remaining: int) -> Any:
        """The outputs of the steps of the last block, from the one called with ``remaining``.

        A loop interrupted (Ctrl-C) in the middle of a block has had every step of the block
        applied, but has taken the outputs of its first steps only: this gives the others, to
        keep the loss of every step applied. Empty if that step's block did not run (or no
        block has).
        """
        if self._results is None:
            return np.empty(0)
        j = self._first_remaining - remaining
        if not 0 <= j < self._block_steps:
            j = self._block_steps
        return self._output(slice(j, self._block_steps))

    def __call__(self, steps: int | None = None) -> Any:
        """Run ``steps`` steps on the first batches of the blocks (default: all they hold).

        Returns
        -------
        numpy.ndarray, list of numpy.ndarray, or None
            Each output of the step, stacked over the steps: one array if the step has one
            output, a list if it was compiled with a list, None without outputs.
        """
        held = min(len(block.get_value(borrow=True)) for block in self.blocks.values())
        steps = held if steps is None else int(steps)
        if not 0 < steps <= held:
            raise ValueError(f"The blocks hold {held} batches; cannot run {steps} steps.")
        if self.fixed_length and steps != self.steps_per_call:
            results = self._one_by_one(steps)
        else:
            for block in self.blocks.values():
                value = block.get_value(borrow=True)
                if len(value) != steps:
                    block.set_value(value[:steps], borrow=True)
            results = [np.asarray(result) for result in self.function()]
        if not results:
            return None
        return results[0] if self._single_output else results

    def _one_by_one(self, steps: int) -> list[np.ndarray]:
        """Run the blocks' first ``steps`` batches through the one-step function, one per call."""
        if self._one_step is None:
            outputs, updates, mode, kwargs = self._one_step_graph
            with feeding_data():  # the loop feeds this function's data as it feeds the block's
                self._one_step = compile(
                    [], outputs, updates=updates, random_seed=False, mode=mode, **kwargs
                )
        one_step = self._one_step
        # PyTensor's JAX backend keeps its own copy of each generator in a compiled function's
        # input storage, and has no API to share it: carry them over to the one-step function
        # and back.
        mine, its = _rng_containers(self.function), _rng_containers(one_step)
        shared = [var for var in mine if var in its]
        for var in shared:
            its[var].storage[0] = mine[var].storage[0]
        outputs = []
        try:
            for j in range(steps):
                for var, block in self.blocks.items():
                    var.set_value(block.get_value(borrow=True)[j], borrow=True)
                result = one_step()
                outputs.append(result if isinstance(result, list) else [result])
        finally:
            for var in shared:
                mine[var].storage[0] = its[var].storage[0]
        return [np.stack([np.asarray(out[i]) for out in outputs]) for i in range(len(outputs[0]))]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_one_step"] = None  # compiled again when needed
        return state

    def __repr__(self) -> str:
        return f"BlockFunction(steps_per_call={self.steps_per_call}, fed={list(self.blocks)})"
