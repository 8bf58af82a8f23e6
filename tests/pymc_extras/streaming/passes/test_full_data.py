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
"""A full-data pass gives the model's in-memory logp and gradient, for many points at once."""

import threading

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymc.pytensorf import compile, join_nonshared_inputs
from pymc.streaming import SourceDataError, StreamingNotSupportedError, get_stream

from pymc_extras.streaming.passes.full_data import FullDataLogp
from pymc_extras.streaming.passes.minibatched_data import reads_minibatched_data
from tests.streaming.full_data_models import Chunked, families, hierarchical, linear, simulate

N = 1_200
GROUPS = 50
RNG = np.random.default_rng(7)
DATA = simulate(RNG, N, groups=GROUPS, intercept=0.2)
X, Y_LINEAR = DATA.X, DATA.y_linear
FAMILIES = families(DATA)


def in_memory_logp_dlogp(model, jacobian=True):
    """The model's own full-data logp and gradient, on the raveled point."""
    (logp, dlogp), x = join_nonshared_inputs(
        model.initial_point(),
        [model.logp(jacobian=jacobian), model.dlogp(jacobian=jacobian)],
        model.value_vars,
    )
    return compile([x], [logp, dlogp])


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    build, data = FAMILIES[request.param]
    chunked = Chunked(*data)
    streamed = build(*pm.Minibatch(chunked, batch_size=64, streaming=True))
    return FullDataLogp(streamed), chunked, in_memory_logp_dlogp(build(*data))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(0, N), max_size=12),
    chunk_size=st.integers(1, 2 * N),
    grad_points=st.integers(0, 4),
    value_points=st.integers(0, 40),
    seed=st.integers(0, 2**16),
)
def test_a_pass_gives_the_in_memory_logp_and_gradient_at_every_point(
    family, cuts, chunk_size, grad_points, value_points, seed
):
    full, chunked, reference = family
    chunked.cuts = cuts
    full.chunk_size = chunk_size
    points = np.random.default_rng(seed).normal(size=(grad_points + value_points, full.ndim))
    result = full.evaluate(points[:grad_points], points[grad_points:])
    expected = [reference(point) for point in points]
    expected_logp = np.array([logp for logp, _ in expected])
    np.testing.assert_allclose(result.logp, expected_logp[:grad_points], rtol=1e-10)
    np.testing.assert_allclose(result.value_logp, expected_logp[grad_points:], rtol=1e-10)
    for grad, (_, expected_grad) in zip(result.grad, expected):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-8, atol=1e-8)


def test_one_pass_reads_the_data_once_whatever_the_number_of_points(family):
    full, chunked, _ = family
    chunked.cuts = [100, 700]
    passes, rows = full.passes, full.rows_read
    full.evaluate(np.zeros((3, full.ndim)), np.zeros((500, full.ndim)))
    assert (full.passes - passes, full.rows_read - rows) == (1, N)


def test_helpers_evaluate_one_point_or_many():
    model = linear(*pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True))
    full = FullDataLogp(model, chunk_size=500)
    reference = in_memory_logp_dlogp(linear(X, Y_LINEAR))
    x = np.linspace(-1, 1, full.ndim)
    value, grad = full.logp_dlogp(x)
    np.testing.assert_allclose(value, reference(x)[0], rtol=1e-10)
    np.testing.assert_allclose(grad, reference(x)[1], rtol=1e-8)
    np.testing.assert_allclose(full.logp(np.stack([x, -x])), [reference(x)[0], reference(-x)[0]])


def test_without_jacobian():
    model = linear(*pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True))
    full = FullDataLogp(model, jacobian=False)
    reference = in_memory_logp_dlogp(linear(X, Y_LINEAR), jacobian=False)
    x = np.full(full.ndim, 0.3)
    np.testing.assert_allclose(full.logp_dlogp(x)[0], reference(x)[0], rtol=1e-10)


def test_terms_without_streamed_data_count_once_and_separate_streams_separately():
    """A second dataset of another length, a potential on streamed data, in-memory data."""
    y_other = RNG.normal(size=333) + 1.0
    with pm.Model() as streamed:
        X_mb, y_mb = pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True)
        other_mb = pm.Minibatch(y_other, batch_size=10, streaming=True)
        beta = pm.Normal("beta", 0, 2, shape=3)
        mu = pm.Normal("mu")
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
        pm.Normal("other", mu, 1, observed=other_mb)
        pm.Normal("small", mu, 1, observed=[0.5, 1.5])
        pm.Potential("penalty", -0.01 * pt.sum(X_mb @ beta))
    with pm.Model() as in_memory:
        beta = pm.Normal("beta", 0, 2, shape=3)
        mu = pm.Normal("mu")
        pm.Normal("y", X @ beta, 1, observed=Y_LINEAR)
        pm.Normal("other", mu, 1, observed=y_other)
        pm.Normal("small", mu, 1, observed=[0.5, 1.5])
        pm.Potential("penalty", -0.01 * pt.sum(X @ beta))
    full = FullDataLogp(streamed, chunk_size=100)
    assert len(full.sources) == 2
    reference = in_memory_logp_dlogp(in_memory)
    x = np.array([0.1, -0.2, 0.3, 0.9])
    value, grad = full.logp_dlogp(x)
    np.testing.assert_allclose(value, reference(x)[0], rtol=1e-10)
    np.testing.assert_allclose(grad, reference(x)[1], rtol=1e-8)
    assert full.rows_read == N + 333


def test_a_one_shot_source_is_refused_before_any_pass():
    chunks = iter([(X[:600], Y_LINEAR[:600]), (X[600:], Y_LINEAR[600:])])
    model = linear(*pm.Minibatch(chunks, batch_size=64, streaming=True, total_size=N))
    with pytest.raises(
        StreamingNotSupportedError, match=r"one-shot iterator.*cannot be read again"
    ):
        FullDataLogp(model)
    assert next(chunks)[0].shape == (600, 3)  # the rest of the iterator was left unread


def test_a_model_without_minibatches_is_refused():
    assert not reads_minibatched_data(linear(X, Y_LINEAR))
    with pytest.raises(StreamingNotSupportedError, match=r"reads no pm\.Minibatch"):
        FullDataLogp(linear(X, Y_LINEAR))


def test_a_prior_on_streamed_data_is_refused():
    with pm.Model() as model:
        y_mb = pm.Minibatch(Y_LINEAR, batch_size=64, streaming=True)
        mu = pm.Normal("mu", pt.mean(y_mb), 1)
        pm.Normal("y", mu, 1, observed=y_mb)
    with pytest.raises(StreamingNotSupportedError, match="prior of 'mu' depends on minibatched"):
        FullDataLogp(model)


@pytest.mark.parametrize(
    "chunk_size, error, match",
    [(0, ValueError, "at least 1 row, got 0"), (2.5, TypeError, "integer number of rows")],
    ids=["zero", "float"],
)
def test_chunk_size_is_validated(chunk_size, error, match):
    model = linear(*pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True))
    with pytest.raises(error, match=match):
        FullDataLogp(model, chunk_size=chunk_size)


def test_points_of_the_wrong_shape_are_refused():
    full = FullDataLogp(linear(*pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True)))
    with pytest.raises(ValueError, match=r"value_points must have shape \(number of points, 5\)"):
        full.evaluate(value_points=np.zeros(5))


@pytest.mark.parametrize("error", [OSError("disk gone"), SourceDataError("bad chunk")], ids=str)
def test_source_errors_surface_with_their_type_and_no_reader_is_left(error):
    def chunks():
        yield X[:600], Y_LINEAR[:600]
        raise error

    model = linear(*pm.Minibatch(chunks, batch_size=64, streaming=True, total_size=N))
    full = FullDataLogp(model)
    with pytest.raises(type(error), match=str(error)) as raised:
        full.logp_dlogp(np.zeros(full.ndim))
    assert raised.value is error
    assert not [t for t in threading.enumerate() if t.name == "pymc-full-data-pass"]


def test_a_model_with_initial_values_is_evaluated_and_keeps_them():
    """fgraph_from_model refuses initial values; the user's model keeps them, untouched."""
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(X, Y_LINEAR, batch_size=64, streaming=True)
        beta = pm.Normal("beta", 0, 2, shape=3, initval=np.array([0.5, -0.5, 0.1]))
        sigma = pm.HalfNormal("sigma", 2, initval=1.5)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb)
    before = dict(model.rvs_to_initial_values)
    full = FullDataLogp(model)
    assert model.rvs_to_initial_values.keys() == before.keys()
    assert all(model.rvs_to_initial_values[rv] is value for rv, value in before.items())
    with pm.Model() as in_memory:
        beta = pm.Normal("beta", 0, 2, shape=3)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X @ beta, sigma, observed=Y_LINEAR)
    x = np.array([0.4, -0.3, 0.2, 0.1])
    value, grad = full.logp_dlogp(x)
    reference = in_memory_logp_dlogp(in_memory)
    np.testing.assert_allclose(value, reference(x)[0], rtol=1e-10)
    np.testing.assert_allclose(grad, reference(x)[1], rtol=1e-8)


def test_under_float32_streamed_floats_and_passes_follow_floatX_and_sums_stay_float64():
    """Float data in floatX, as pm.Data converts it; integers as they are; passes evaluated in
    the model's float32, their sums over chunks kept in float64."""
    with pytensor.config.change_flags(floatX="float32"):
        chunked = Chunked(X, Y_LINEAR)
        chunked.cuts = [100, 700]
        X_mb, y_mb = pm.Minibatch(chunked, batch_size=64, streaming=True)
        g_mb, yg_mb = pm.Minibatch(DATA.group, DATA.y_grouped, batch_size=64, streaming=True)
        assert (X_mb.dtype, y_mb.dtype, g_mb.dtype, yg_mb.dtype) == (
            "float32",
            "float32",
            "int64",
            "float32",
        )
        assert [part.dtype for part in get_stream(X_mb).next_batch()] == [np.float32] * 2
        assert [part.dtype for part in get_stream(g_mb).next_batch()] == [np.int64, np.float32]
        full = FullDataLogp(linear(X_mb, y_mb), chunk_size=256)
        reference = in_memory_logp_dlogp(linear(X.astype("float32"), Y_LINEAR.astype("float32")))
        hierarchical_full = FullDataLogp(hierarchical(g_mb, yg_mb, groups=GROUPS))
        points = np.random.default_rng(3).normal(scale=0.3, size=(3, full.ndim))
        result = full.evaluate(points, points)
    assert result.logp.dtype == result.grad.dtype == result.value_logp.dtype == np.float64
    expected = [reference(point.astype("float32")) for point in points]
    np.testing.assert_allclose(result.logp, [logp for logp, _ in expected], rtol=1e-5)
    np.testing.assert_allclose(result.value_logp, result.logp, rtol=1e-6)
    for grad, (_, expected_grad) in zip(result.grad, expected):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-2)
    assert hierarchical_full.logp_dlogp(np.zeros(hierarchical_full.ndim))[1].dtype == np.float64


def several_observations(X_data, y_data, z_data, offsets):
    """A linear and a logistic likelihood on the same rows, with pm.Data beside the stream."""
    with pm.Model() as model:
        shift = pm.Data("shift", offsets)  # data held in the graph, not streamed
        beta = pm.Normal("beta", 0, 2, shape=3)
        intercept = pm.Normal("intercept", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        eta = intercept + (X_data + shift) @ beta
        pm.Normal("y", eta, sigma, observed=y_data)
        pm.Bernoulli("z", logit_p=0.5 * eta, observed=z_data)
        pm.Normal("prior_data", intercept, 1, observed=shift)  # observed in memory
    return model


@pytest.mark.parametrize("count", [1, 24], ids=["one_point", "24_points"])
def test_a_pass_equals_compile_logp_and_dlogp_of_the_model_on_the_full_data(count):
    """The compiled evaluation of a pass (the switch lift, the GIL released, calls of equal
    rows, sums in float64) gives the in-memory model's own logp and gradient."""
    offsets = np.array([0.1, -0.2, 0.05])
    chunked = Chunked(X, Y_LINEAR, DATA.y_logistic)
    chunked.cuts = [7, 500, 501]
    streamed = several_observations(*pm.Minibatch(chunked, batch_size=64, streaming=True), offsets)
    in_memory = several_observations(X, Y_LINEAR, DATA.y_logistic, offsets)
    full = FullDataLogp(streamed, chunk_size=300)
    logp_fn, dlogp_fn = in_memory.compile_logp(), in_memory.compile_dlogp()
    shapes = {name: np.shape(value) for name, value in in_memory.initial_point().items()}
    names = [var.name for var in in_memory.value_vars]  # the order of a raveled point
    sizes = [int(np.prod(shapes[name])) for name in names]
    points = np.random.default_rng(count).normal(scale=0.5, size=(count, full.ndim))
    result = full.evaluate(points, points)
    for k, point in enumerate(points):
        parts = np.split(point, np.cumsum(sizes)[:-1])
        values = {name: part.reshape(shapes[name]) for name, part in zip(names, parts)}
        np.testing.assert_allclose(result.logp[k], logp_fn(values), rtol=1e-10)
        np.testing.assert_allclose(result.value_logp[k], logp_fn(values), rtol=1e-10)
        np.testing.assert_allclose(result.grad[k], dlogp_fn(values), rtol=1e-10, atol=1e-12)


def shifting(rows_per_pass):
    """A factory whose passes yield the given rows in turn (the data changing under a fit)."""
    passes = iter(rows_per_pass)

    def chunks():
        rows = next(passes)
        yield X[: min(rows, N)], Y_LINEAR[: min(rows, N)]
        if rows > N:
            yield X[: rows - N], Y_LINEAR[: rows - N]

    return chunks


@pytest.mark.parametrize(
    "rows, match",
    [
        (1_000, r"read 1000 rows, but the source declares 1200 rows"),
        (1_500, r"read more than 1200 \(at least 1500\) rows, but the source declares 1200"),
    ],
    ids=["fewer", "more"],
)
def test_a_pass_that_reads_other_rows_than_the_source_declares_is_refused(rows, match):
    factory = shifting([N, rows, N])
    model = linear(*pm.Minibatch(factory, batch_size=64, streaming=True, total_size=N))
    full = FullDataLogp(model, chunk_size=256)
    x = np.zeros((1, full.ndim))
    expected = full.evaluate(x)  # the first pass reads the 1,200 rows declared
    with pytest.raises(SourceDataError, match=rf"IterableSource\(factory chunks\(\)\).*{match}"):
        full.evaluate(x)
    assert (full.passes, full.rows_read) == (1, N)  # the failed pass counts nothing
    assert not [t for t in threading.enumerate() if t.name == "pymc-full-data-pass"]
    again = full.evaluate(x)
    np.testing.assert_array_equal(again.logp, expected.logp)


def blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


class RecordingBlasThreads(Chunked):
    """Records the BLAS threads of the process while a pass reads it."""

    def __iter__(self):
        self.seen = blas_threads()
        yield from super().__iter__()


def test_a_pass_runs_with_the_blas_threads_asked_for_and_restores_them():
    from threadpoolctl import threadpool_limits

    source = RecordingBlasThreads(X, Y_LINEAR)
    model = linear(*pm.Minibatch(source, batch_size=64, streaming=True))
    full = FullDataLogp(model)
    full.evaluate(np.zeros((2, full.ndim)))  # the pass that building the stream opened
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        source.seen = []
        full.evaluate(np.zeros((2, full.ndim)))
        assert source.seen and set(source.seen) == {1}
        assert blas_threads() == before
        full.blas_cores = None  # the process's own setting
        full.evaluate(np.zeros((2, full.ndim)))
        assert source.seen == before
    with pytest.raises(ValueError, match="blas_cores must be a positive number of threads"):
        FullDataLogp(model, blas_cores=0)
