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
"""Compiled calls that release the GIL: the same results, other threads run, caches apart."""

import os
import threading
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from pytensor.compile import get_mode
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.linker import NumbaLinker
from pytensor.raise_op import Assert

import pymc as pm

from pymc.data_feed import feeding_data
from pymc.variational import blocks
from pymc.variational.nogil import NumbaLinkerReleasingGIL, release_gil
from tests.list_feed import ListFeed

X_VALUES = np.random.default_rng(0).normal(size=20_000)


def long_call(scale: float, mode):
    """A function whose call runs a loop of ``n`` steps, each depending on the one before."""
    x = pt.vector("x")
    n = pt.iscalar("n")
    # The step reads the carried value, so PyTensor cannot hoist the work out of the loop; the
    # scale makes each test's graph, and so its cache entries, its own.
    [total] = pytensor.scan(
        lambda acc, x: acc + pt.sin(x + acc).sum() * scale,
        outputs_info=[pt.as_tensor(np.float64(0.0))],
        non_sequences=[x],
        n_steps=n,
        return_updates=False,
        return_list=True,
    )
    return pytensor.function([x, n], total[-1], mode=mode)


def python_steps_during(function, *args) -> int:
    """How often another Python thread ran in the middle 80% of a call of ``function``.

    The thread takes the time, then sleeps a millisecond. While a call holds the GIL, no other
    thread runs Python at all: it may run only as the call starts and ends, which the middle
    of the call leaves out.
    """
    function(X_VALUES, 1)  # compiled (or loaded from the cache) before the timed call
    stamps: list[float] = []
    stop = threading.Event()

    def stamp():
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    thread = threading.Thread(target=stamp)
    thread.start()
    try:
        time.sleep(0.01)
        start = time.perf_counter()
        function(*args)
        end = time.perf_counter()
    finally:
        stop.set()
        thread.join()
    margin = (end - start) / 10
    return sum(start + margin < t < end - margin for t in stamps)


@pytensor.config.change_flags(mode="NUMBA")  # PyTensor's default, whatever a test before set
def test_release_gil_gives_a_numba_mode_that_releases_it():
    mode = get_mode("NUMBA").including("random_make_inplace")
    released = release_gil(mode)
    assert type(released.linker) is NumbaLinkerReleasingGIL
    assert isinstance(released.linker, NumbaLinker)  # what checks for the backend see
    assert released.provided_optimizer == mode.provided_optimizer
    assert release_gil(released) is released
    # Nothing global changed: the modes PyTensor hands out still hold the GIL.
    assert type(get_mode("NUMBA").linker) is NumbaLinker
    assert type(get_mode(None).linker) is not NumbaLinkerReleasingGIL


@pytest.mark.parametrize("name", ["JAX", "CVM", "PYTORCH", "FAST_COMPILE"])
def test_other_backends_are_left_as_they_are(name):
    mode = get_mode(name)
    assert release_gil(mode) is mode


@pytest.mark.parametrize("released_first", [True, False], ids=["released first", "held first"])
def test_a_call_releases_the_gil_and_the_one_compiled_to_hold_it_does_not(released_first):
    # Compiled in both orders: Numba's cache would hand the version compiled first to the
    # other if it did not keep them apart (its cache key does not include nogil).
    scale = 1.25e-6 if released_first else 1.5e-6
    modes = [release_gil("NUMBA"), get_mode("NUMBA")]
    released, held = (long_call(scale, mode) for mode in (modes if released_first else modes[::-1]))
    if not released_first:
        released, held = held, released
    assert released.vm.jit_fn.targetoptions.get("nogil") is True
    assert not held.vm.jit_fn.targetoptions.get("nogil")
    assert python_steps_during(held, X_VALUES, 4_000) == 0
    assert python_steps_during(released, X_VALUES, 4_000) >= 5
    np.testing.assert_array_equal(held(X_VALUES, 50), released(X_VALUES, 50))


def test_the_numba_cache_keeps_the_two_versions_apart():
    held = long_call(1.75e-6, "NUMBA")
    released = long_call(1.75e-6, release_gil("NUMBA"))
    held(X_VALUES, 1)
    released(X_VALUES, 1)
    # Numba's index files of the two: its cache key (the file name) differs by a suffix.
    held_index, released_index = (
        os.path.basename(f.vm.jit_fn._cache._cache_file._index_path) for f in (held, released)
    )
    assert "-nogil" in released_index and "-nogil" not in held_index
    assert released_index.replace("-nogil", "") == held_index


def test_the_same_results_bit_for_bit_with_random_draws_and_updates():
    def compile_(mode):
        rng = pytensor.shared(np.random.default_rng(7))
        weights = pytensor.shared(np.zeros(5), name="w")
        next_rng, draws = pt.random.normal(size=(64, 5), rng=rng, return_next_rng=True)
        [trace] = pytensor.scan(
            lambda d, w: w + 0.01 * pt.tanh(d - w),
            sequences=[draws],
            outputs_info=[weights],
            return_updates=False,
            return_list=True,
        )
        loss = (trace**2).sum(axis=1)
        return (
            pytensor.function([], loss, updates={rng: next_rng, weights: trace[-1]}, mode=mode),
            weights,
        )

    (held, held_weights), (released, released_weights) = (
        compile_(mode) for mode in (get_mode("NUMBA"), release_gil("NUMBA"))
    )
    for _ in range(3):
        np.testing.assert_array_equal(held(), released())
    np.testing.assert_array_equal(held_weights.get_value(), released_weights.get_value())


def test_an_error_raised_in_the_compiled_code_reaches_the_caller():
    x = pt.vector("x")
    checked = Assert("x must be positive")(x, pt.all(x > 0))
    function = pytensor.function([x], checked.sum(), mode=release_gil("NUMBA"))
    assert function([1.0, 2.0]) == 3.0
    with pytest.raises(AssertionError, match="x must be positive"):
        function([1.0, -2.0])
    assert function([3.0]) == 3.0  # and the function still works after it


class _PythonOnly(Op):
    """An Op with no Numba implementation: Numba runs it in object mode, holding the GIL."""

    __props__ = ()

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        [x] = inputs
        if (x < 0).any():
            raise ValueError("negative input to the Python-only Op")
        output_storage[0][0] = x * 2


def test_an_operation_in_object_mode_takes_the_gil_back_for_its_call():
    x = pt.vector("x")
    with pytest.warns(UserWarning, match="object mode"):
        function = pytensor.function([x], _PythonOnly()(x).sum(), mode=release_gil("NUMBA"))
    assert function(np.array([1.0, 2.0])) == 6.0
    with pytest.raises(ValueError, match="negative input"):
        function(np.array([-1.0]))


@pytensor.config.change_flags(mode="NUMBA")  # PyTensor's default, whatever a test before set
def test_a_fit_in_blocks_releases_the_gil_and_fits_the_same_as_holding_it():
    rng = np.random.default_rng(3)
    batches = [rng.normal(loc=1.5, size=50) for _ in range(100)]

    def fit():
        feed = ListFeed(batches)
        with pm.Model():
            mu = pm.Normal("mu", 0, 5)
            pm.Normal("y", mu, 1.0, observed=feed.buffer)
            inference = pm.ADVI(random_seed=5)
            approx = inference.fit(100, progressbar=False, steps_per_call=16)
        return inference, approx, feed

    inference, approx, feed = fit()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(blocks, "release_gil", lambda mode: mode)
        _, held, held_feed = fit()
    np.testing.assert_array_equal(approx.hist, held.hist)
    for ours, theirs in zip(approx.params, held.params):
        np.testing.assert_array_equal(ours.get_value(), theirs.get_value())
    assert feed.position == held_feed.position == 100
    with inference.approx.model, feeding_data():
        block_function = inference.objective.step_function(score=True, steps_per_call=16)
    assert type(block_function.maker.linker) is NumbaLinkerReleasingGIL
