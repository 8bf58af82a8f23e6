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
"""A pass's compilation mode computes what PyTensor's default computes, bit for bit."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from pytensor.compile.mode import get_default_mode
from pytensor.scalar.math import Softplus

from pymc_extras.streaming.passes.pass_mode import pass_mode


def softplus_calls(fn) -> int:
    """Softplus operations in a compiled function, inside its fused loops too."""
    count = 0
    for node in fn.maker.fgraph.toposort():
        scalar = getattr(node.op, "scalar_op", None)
        inner = getattr(node.op, "fgraph", None) or getattr(scalar, "fgraph", None)
        nodes = inner.toposort() if inner is not None else [node]
        for inner_node in nodes:
            op = getattr(inner_node.op, "scalar_op", inner_node.op)
            if isinstance(op, Softplus):
                count += 1
            elif hasattr(op, "fgraph"):  # a Composite inside a fused loop
                count += sum(isinstance(n.op, Softplus) for n in op.fgraph.toposort())
    return count


def bernoulli_logp_and_grad():
    """PyMC's Bernoulli log density on a logit, summed, and its gradient."""
    eta, y = pt.vector("eta"), pt.vector("y", dtype="int64")
    logp = pm.logp(pm.Bernoulli.dist(logit_p=eta), y).sum()
    return [eta, y], [logp, pytensor.grad(logp, eta)]


def test_the_switch_lift_computes_one_softplus_with_the_same_values_bit_for_bit():
    inputs, outputs = bernoulli_logp_and_grad()
    default = pytensor.function(inputs, outputs, mode=get_default_mode())
    lifted = pytensor.function(inputs, outputs, mode=pass_mode())
    assert softplus_calls(default) == 2  # log(p) and log(1 - p), both computed per element
    assert softplus_calls(lifted) == 1
    rng = np.random.default_rng(0)
    eta = np.concatenate([rng.normal(scale=3, size=10_000), [-800.0, -40.0, 40.0, 800.0]])
    eta = np.concatenate([eta, [np.inf, -np.inf]])
    y = rng.integers(0, 2, size=len(eta))
    for expected, got in zip(default(eta, y), lifted(eta, y)):
        np.testing.assert_array_equal(got, expected)


def test_the_switch_lift_leaves_a_branch_used_elsewhere():
    """Lifting would compute the branch's function once more, not once less."""
    x, c = pt.vector("x"), pt.vector("c", dtype="bool")
    left, right = pt.softplus(-x), pt.softplus(x)
    fn = pytensor.function([x, c], [pt.switch(c, left, right), left * 2], mode=pass_mode())
    assert softplus_calls(fn) == 2
    values = np.array([-1.0, 0.5, 3.0])
    np.testing.assert_array_equal(
        fn(values, np.array([True, False, True]))[0],
        [np.log1p(np.exp(1.0)), np.log1p(np.exp(0.5)), np.log1p(np.exp(-3.0))],
    )


@pytest.mark.parametrize("mode", ["NUMBA", None], ids=["numba", "default"])
def test_numba_functions_release_the_gil_while_they_run(mode):
    x = pt.vector("x")
    fn = pytensor.function([x], pt.exp(x).sum(), mode=pass_mode(mode))
    assert fn(np.zeros(3)) == 3.0
    assert fn.vm.jit_fn.targetoptions["nogil"] is True


def test_other_backends_keep_their_linker_and_gain_the_lift():
    mode = pass_mode("FAST_COMPILE")
    assert type(mode.linker) is type(pytensor.compile.mode.get_mode("FAST_COMPILE").linker)
    inputs, outputs = bernoulli_logp_and_grad()
    fn = pytensor.function(inputs, outputs, mode=mode)
    eta, y = np.array([-2.0, 0.0, 3.0]), np.array([0, 1, 1])
    reference = pytensor.function(inputs, outputs, mode="FAST_COMPILE")
    for expected, got in zip(reference(eta, y), fn(eta, y)):
        np.testing.assert_allclose(got, expected, rtol=1e-15)
