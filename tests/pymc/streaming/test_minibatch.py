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
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytensor.tensor as pt
import pytest

import pymc as pm

from pymc.data import MinibatchOp
from pymc.data_feed import feeding_data
from pymc.streaming import InvalidSourceError, SourceDataError, StreamBuffer, get_stream
from pymc.streaming.sources import OutputSpec, Source
from pymc.variational.minibatch_rv import MinibatchRandomVariable

N = 200
X = np.random.default_rng(0).normal(size=(N, 3))
Y = X.sum(axis=1)


def observed_total_size(rv):
    """The total_size PyMC scales the observed variable's logp by."""
    node = rv.owner
    assert isinstance(node.op, MinibatchRandomVariable)
    return node.inputs[1].eval()


def test_returns_one_buffer_per_output():
    X_mb, y_mb = pm.Minibatch(X, Y, batch_size=10, streaming=True)
    assert isinstance(X_mb, StreamBuffer) and isinstance(y_mb, StreamBuffer)
    assert X_mb.get_value().shape == (10, 3) and y_mb.get_value().shape == (10,)
    assert get_stream(X_mb) is get_stream(y_mb)
    single = pm.Minibatch(X, batch_size=10, streaming=True)
    assert isinstance(single, pt.TensorVariable) and single.ndim == 2


def test_one_source_of_tuples_gives_its_outputs():
    X_mb, y_mb = pm.Minibatch([(X[:50], Y[:50]), (X[50:], Y[50:])], batch_size=8, streaming=True)
    assert get_stream(X_mb).num_rows == N and y_mb.ndim == 1


def test_total_size_is_inferred_in_rows():
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=10, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=3)
        y = pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
        x = pm.Normal("x", 0, 1, observed=X_mb)
    assert observed_total_size(y) == N
    assert observed_total_size(x) == N


def test_scaled_logp_is_n_over_batch_rows():
    with pm.Model() as model:
        y_mb = pm.Minibatch(Y, batch_size=20, streaming=True, shuffle_buffer=0)
        pm.Normal("y", 0, 1, observed=y_mb)
    batch = y_mb.get_value()
    expected = N / 20 * pm.logp(pm.Normal.dist(0, 1), batch).sum().eval()
    np.testing.assert_allclose(_fed_logp(model)({}), expected)


def test_averaged_batch_logp_over_an_epoch_is_the_full_data_logp():
    with pm.Model() as model:
        y_mb = pm.Minibatch(Y, batch_size=25, streaming=True, random_seed=4)
        pm.Normal("y", 0.5, 2, observed=y_mb)
    logp = _fed_logp(model)
    stream = get_stream(y_mb)
    scaled = []
    for _ in range(N // 25):
        stream.refresh()
        scaled.append(logp({}))
    full = pm.logp(pm.Normal.dist(0.5, 2), Y).sum().eval()
    np.testing.assert_allclose(np.mean(scaled), full)


def test_total_size_given_when_the_source_cannot_tell():
    def chunks():
        return iter([(X[:100], Y[:100]), (X[100:], Y[100:])])

    with pm.Model():
        X_mb, y_mb = pm.Minibatch(chunks, batch_size=10, streaming=True, total_size=N)
        y = pm.Normal("y", X_mb.sum(axis=1), 1, observed=y_mb)
    assert observed_total_size(y) == N
    with pm.Model():  # or on the observed variable
        X_mb, y_mb = pm.Minibatch(chunks, batch_size=10, streaming=True)
        y = pm.Normal("y", X_mb.sum(axis=1), 1, observed=y_mb, total_size=N)
    assert observed_total_size(y) == N
    assert get_stream(y_mb).num_rows == N


def test_unknown_row_count_without_total_size_is_an_error():
    X_mb, y_mb = pm.Minibatch(lambda: iter([(X, Y)]), batch_size=10, streaming=True)
    with pm.Model():
        with pytest.raises(SourceDataError, match=r"cannot tell its number of rows.*total_size="):
            pm.Normal("y", X_mb.sum(axis=1), 1, observed=y_mb)


def test_total_size_disagreeing_with_the_stream_is_an_error():
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=10, streaming=True)
        with pytest.raises(
            SourceDataError, match=r"total_size=1000, but its data feed .* has 200 rows"
        ):
            pm.Normal("y", X_mb.sum(axis=1), 1, observed=y_mb, total_size=1000)
    with pytest.raises(SourceDataError, match="total_size=1000 but the source has 200 rows"):
        pm.Minibatch(X, batch_size=10, streaming=True, total_size=1000)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1, got 0"),
        ({"batch_size": -5}, ValueError, "batch_size must be at least 1, got -5"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be an integer, got float"),
        ({"batch_size": N + 1}, ValueError, "batch_size=201 is larger than the 200 rows"),
        ({"batch_size": 10, "prefetch": -1}, ValueError, "prefetch must be at least 0"),
        ({"batch_size": 10, "shuffle_buffer": -1}, ValueError, "shuffle_buffer must be at least"),
        ({"batch_size": 10, "total_size": 0}, ValueError, "total_size must be at least 1"),
        ({"batch_size": 10, "random_seed": "x"}, TypeError, "random_seed must be an integer"),
    ],
    ids=["zero", "negative", "float", "too-large", "prefetch", "buffer", "total", "seed"],
)
def test_bad_keywords(kwargs, error, match):
    with pytest.raises(error, match=match):
        pm.Minibatch(X, streaming=True, **kwargs)


def test_not_a_source_is_refused():
    with pytest.raises(InvalidSourceError, match="is a PyTensor variable"):
        pm.Minibatch(pt.as_tensor(X), batch_size=10, streaming=True)
    with pytest.raises(InvalidSourceError, match=r"is a path .*CSVSource"):
        pm.Minibatch("data.csv", batch_size=10, streaming=True)


def test_streaming_keywords_need_streaming():
    with pytest.raises(TypeError, match="got prefetch, shuffle_buffer, which only apply with"):
        pm.Minibatch(X, batch_size=10, shuffle_buffer=5, prefetch=2)


def test_streaming_false_is_upstream_minibatch():
    X_mb = pm.Minibatch(X, batch_size=10, streaming=False)
    assert not isinstance(X_mb, StreamBuffer) and isinstance(X_mb.owner.op, MinibatchOp)
    assert X_mb.eval().shape == (10, 3)


@pytest.mark.parametrize("method", ["sample", "find_MAP"])
def test_mcmc_and_map_refuse_streaming_models(method):
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(X, Y, batch_size=10, streaming=True)
        beta = pm.Normal("beta", 0, 1, shape=3)
        pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
        with pytest.raises(pm.streaming.StreamingNotSupportedError, match=f"{method} .*one batch"):
            getattr(pm, method)()


def test_default_prefetch_reads_arrays_in_memory_synchronously(tmp_path):
    np.save(tmp_path / "y.npy", Y)
    memmap = np.load(tmp_path / "y.npy", mmap_mode="r")
    defaults = {
        "array": pm.Minibatch(Y, batch_size=10, streaming=True),
        "memmap": pm.Minibatch(memmap, batch_size=10, streaming=True),
        "chunks": pm.Minibatch([Y[:100], Y[100:]], batch_size=10, streaming=True),
    }
    assert {name: get_stream(v).prefetch for name, v in defaults.items()} == {
        "array": 0,
        "memmap": pm.streaming.DEFAULT_PREFETCH,
        "chunks": pm.streaming.DEFAULT_PREFETCH,
    }
    assert get_stream(pm.Minibatch(Y, batch_size=10, streaming=True, prefetch=3)).prefetch == 3


def _fed_logp(model):
    """The model's logp on the batch in its buffers, which the test refreshes itself."""
    with feeding_data():
        return model.compile_logp()


class _Declared(Source):
    """A source whose ``num_rows`` is whatever the test declares."""

    def __init__(self, num_rows):
        self.num_rows = num_rows
        self.specs = (OutputSpec(np.dtype(float), ()),)

    def chunks(self):
        yield (np.zeros(100),)

    def head(self, rows):
        return (np.zeros(rows),)


@pytest.mark.parametrize("rows", [2**53 + 1, 2**63, 2**64], ids=["2**53+1", "2**63", "2**64"])
def test_a_row_count_whose_scale_float64_cannot_hold_is_refused(rows):
    # 2**63 overflowed int64 and flipped the likelihood's sign; 2**64 raised OverflowError.
    with pytest.raises(SourceDataError, match=rf"reports num_rows={rows:,}, more than 2\*\*53"):
        pm.Minibatch(_Declared(rows), batch_size=10, streaming=True)
    with pytest.raises(ValueError, match=rf"total_size must be at most .*, got {rows:,}"):
        pm.Minibatch(lambda: iter([np.zeros(100)]), batch_size=10, streaming=True, total_size=rows)
    with pm.Model():
        buffer = pm.Minibatch(_Declared(2**53), batch_size=10, streaming=True)
        rv = pm.Normal("y", 0, 1, observed=buffer)
    assert observed_total_size(rv) == 2**53


def test_the_memory_guards_use_the_memory_this_process_may_use(monkeypatch):
    from pymc.data_feed import memory

    monkeypatch.setattr(memory, "memory_limit", lambda: 10**6)  # e.g. a 1 MB cgroup
    with pytest.raises(
        ValueError,
        match=r"prefetch=16 would hold .* \(1\.3 MB\), more than half of this process's memory "
        r"\(1\.0 MB: the least of the machine's memory, its cgroup's limit and its "
        r"address-space limit",
    ):
        pm.Minibatch(
            lambda: iter([np.zeros((100, 100))]), batch_size=100, streaming=True, total_size=10**4
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS as Linux has it")
def test_the_address_space_limit_refuses_a_prefetch_that_the_machine_would_take():
    """Under ``ulimit -v``, half of it bounds what prefetch may hold, not half of the machine."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if physical < 8 * 2**30:
        pytest.skip("needs room for Python under a limit of 60% of the machine's memory")
    code = f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({int(0.6 * physical)}, resource.RLIM_INFINITY))
        import numpy as np, pymc as pm
        from pymc.data_feed.memory import memory_limit
        print("limit", memory_limit() == {int(0.6 * physical)})
        try:  # 40% of the machine: under half of it, over half of the process's limit
            pm.Minibatch(
                lambda: iter([np.zeros((1000, 1000))]),
                batch_size=1000, streaming=True, total_size=10**9,
                prefetch={int(0.4 * physical) // 8_000_000},
            )
        except ValueError as error:
            print("refused", error)
        """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "limit True" in done.stdout
    assert "refused prefetch=" in done.stdout and "half of this process's memory" in done.stdout
