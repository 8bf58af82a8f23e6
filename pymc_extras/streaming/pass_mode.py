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
"""How full-data passes compile: code that releases the GIL, and one select instead of two."""

import types

from typing import cast

from pytensor.compile.mode import Mode, get_mode
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.link.numba.linker import NumbaLinker
from pytensor.scalar.basic import Switch
from pytensor.tensor.elemwise import Elemwise

__all__ = ["pass_mode"]

_LIFT_POSITION = 47.9
"""Where the switch lift runs among PyTensor's rewrites: after ``stabilize`` and ``specialize``
(which turn ``log(sigmoid(x))`` into ``-softplus(-x)``, say), before the elementwise fusion
(position 49) that compiles each fused loop."""


def pass_mode(mode: Mode | str | None = None) -> Mode:
    """The compilation mode of a pass's functions, from ``mode`` (None: PyTensor's default).

    ``mode`` with :func:`local_lift_switch` among its rewrites and, on Numba, code that
    releases the GIL while it runs. Neither changes what a function computes, bit for bit: the lift selects the input of a
    unary operation where the graph selected between two of its outputs, and releasing the GIL
    changes only the wrapper that Numba puts around the compiled code.
    """
    lifting = cast(Mode, get_mode(mode)).register((in2out(local_lift_switch), _LIFT_POSITION))
    lifting = cast(Mode, lifting)
    if type(lifting.linker) is not NumbaLinker:
        # JAX releases the GIL during its calls already; the C and Python backends call
        # their operations from Python.
        return lifting
    linker = _NumbaLinkerReleasingGIL(
        allow_gc=lifting.linker.allow_gc, schedule=getattr(lifting.linker, "_scheduler", None)
    )
    return Mode(linker=linker, optimizer=lifting.provided_optimizer, db=lifting.optdb)


@node_rewriter([Elemwise])
def local_lift_switch(fgraph: FunctionGraph, node: Apply):
    """``switch(c, f(a), f(b))`` → ``f(switch(c, a, b))`` for a unary elementwise ``f``.

    Each element of the result is ``f`` of the same input as before, so the values are the
    same, and ``f`` runs once per element instead of twice: a loop spends its time in such
    functions (``softplus`` costs some 20 ns an element, where a multiply-add costs 1). PyMC's
    Bernoulli log density, ``switch(y, log(p), log(1 - p))`` with ``p = sigmoid(eta)``,
    becomes ``switch(y, -softplus(-eta), -softplus(eta))`` once stabilised, and then
    ``-softplus(switch(y, -eta, eta))``. Applied only where neither branch is used elsewhere
    (else ``f`` would run once more, not once less), and where both inputs have one dtype.
    """
    if not isinstance(node.op.scalar_op, Switch):
        return None
    condition, left, right = node.inputs
    if left.owner is None or right.owner is None:
        return None
    op = left.owner.op
    if not (
        isinstance(op, Elemwise)
        and op == right.owner.op
        and op.scalar_op.nin == 1
        and op.scalar_op.nout == 1
        and not op.inplace_pattern
    ):
        return None
    [a], [b] = left.owner.inputs, right.owner.inputs
    if a.type.dtype != b.type.dtype:
        return None
    if any(len(fgraph.clients[branch]) != 1 for branch in (left, right)):
        return None
    selected = node.op(condition, a, b)
    lifted = cast(Variable, op(selected))
    if lifted.type.dtype != node.outputs[0].type.dtype:
        return None
    if lifted.type.broadcastable != node.outputs[0].type.broadcastable:
        return None
    return [lifted]


class _NumbaLinkerReleasingGIL(NumbaLinker):
    """PyTensor's Numba linker, compiling the outer function with ``nogil=True``.

    PyTensor's Numba backend compiles a graph into one Numba function that holds the GIL for
    the whole call, so the thread reading the next chunk of a pass could not run its Python
    (between pyarrow's GIL-free decoding steps) while a chunk is evaluated: reading and
    evaluating would take turns. Only the outer, Python-callable wrapper changes; the graph,
    its rewrites and its machine code are the same. The arrays a pass hands to a call are
    written by no thread while it runs.

    Numba's on-disk cache tells functions apart by signature and code, not by ``nogil``, so the
    function is cached under PyTensor's key with a suffix of its own.
    """

    def jit_compile(self, fn_and_cache):
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
        from pytensor.link.numba.dispatch.basic import numba_njit

        fn, cache_key = fn_and_cache
        py_func = fn.py_func
        key = CACHED_SRC_FUNCTIONS.get(py_func)
        if cache_key is None or key is None:  # a graph that PyTensor does not cache either
            return numba_njit(py_func, final_function=True, nogil=True)
        # PyTensor's cache locator finds a function's key by the function object: a twin of
        # the same code carries the suffixed key.
        twin = types.FunctionType(
            py_func.__code__,
            py_func.__globals__,
            py_func.__name__,
            py_func.__defaults__,
            py_func.__closure__,
        )
        twin.__source__ = getattr(py_func, "__source__", None)  # type: ignore[attr-defined]
        CACHED_SRC_FUNCTIONS[twin] = f"{key}-nogil"
        return numba_njit(twin, final_function=True, cache=True, nogil=True)
