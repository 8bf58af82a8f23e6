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

from typing import cast

from pymc.variational.nogil import release_gil
from pytensor.compile.mode import Mode, get_mode
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.rewriting.basic import in2out, node_rewriter
from pytensor.scalar.basic import Switch
from pytensor.tensor.elemwise import Elemwise

__all__: list[str] = []  # helpers of the package: imported by name, not exported

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
    return release_gil(lifting)  # on Numba; JAX releases it already, C and Python cannot


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
