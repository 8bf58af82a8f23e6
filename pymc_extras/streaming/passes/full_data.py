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
"""Exact full-data log density and gradient of a minibatched model, by passes over its data."""

import numbers

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc.data_feed.guard import values_read_by
from pymc.exceptions import StreamingNotSupportedError
from pymc.model import Model, modelcontext
from pymc.pytensorf import compile, join_nonshared_inputs
from pymc.streaming.sources import Chunk, Source, ZippedSource
from pytensor.compile.executor import Function
from pytensor.graph.basic import Variable
from pytensor.graph.replace import vectorize_graph
from pytensor.graph.traversal import ancestors
from pytensor.tensor.math import variadic_add
from threadpoolctl import threadpool_limits

from pymc_extras.streaming.passes.minibatched_data import MinibatchedData, full_data_model
from pymc_extras.streaming.passes.pass_mode import pass_mode
from pymc_extras.streaming.passes.pass_runner import PartitionPass, PassRunner, PassTraffic

__all__ = ["FullDataLogp"]

DEFAULT_CHUNK_SIZE = 65_536
"""Rows per compiled call for one point: 65,536 rows of a linear model with 10 features are
5 MB of data and 0.5 MB per intermediate vector."""


@dataclass(frozen=True)
class PassResult:
    """What one pass over the data returns.

    Attributes
    ----------
    logp : ndarray, shape (P,)
        Full-data log density at each of the ``P`` gradient points.
    grad : ndarray, shape (P, n)
        Its gradient with respect to the raveled value variables.
    value_logp : ndarray, shape (Q,)
        Full-data log density at each of the ``Q`` value-only points.
    """

    logp: np.ndarray
    grad: np.ndarray
    value_logp: np.ndarray


@dataclass
class _Sums:
    """What one run of chunks adds to a pass: float64 sums at each point, and the rows read."""

    logp: np.ndarray
    grad: np.ndarray
    value_logp: np.ndarray
    rows: int


class _LogpPass(PartitionPass):
    """The compiled evaluation of one block of data terms, summed over chunks of rows.

    Runs here or on the workers of a Dask cluster (:class:`~pymc_extras.streaming.passes.pass_runner.
    PassRunner`). The inputs of a pass are ``(grad_points, value_points, rows_per_call)``.
    ``fn(grad_points, value_points, *rows)`` returns the log density and gradient of the data
    terms of some rows at the gradient points and their log density at the value points,
    vectorised over the points.
    """

    def __init__(self, fn: Function):
        self.fn = fn

    def __getstate__(self) -> dict:
        return {"fn": self.fn}

    def __setstate__(self, state: dict) -> None:
        self.fn = state["fn"]
        self.fn.trust_input = True  # a loaded function forgets it

    def partial(
        self, inputs: Any, chunks: Iterable[Chunk], *, first_row: int, first: bool
    ) -> _Sums:
        grad_points, value_points, rows_per_call = inputs
        # Each call evaluates in the model's dtype; the sums over calls are kept in float64.
        logp = np.zeros(len(grad_points))
        grad = np.zeros(grad_points.shape)
        value_logp = np.zeros(len(value_points))
        rows = 0
        fn = self.fn
        for chunk in chunks:
            size = len(chunk[0])
            # Calls of equal rows, none above rows_per_call: no short call at the end.
            calls = -(-size // rows_per_call)
            step = -(-size // calls) if calls else 0
            for start in range(0, size, step or 1):
                out = fn(grad_points, value_points, *(a[start : start + step] for a in chunk))
                logp += out[0]
                grad += out[1]
                value_logp += out[2]
            rows += size
        return _Sums(logp, grad, value_logp, rows)


@dataclass
class _DataBlock:
    """Data terms that read the same rows: their source, and the passes that sum them."""

    source: Source
    placeholders: list[Variable]  # one per output of the source, in its order
    runner: PassRunner


def _logp_terms(model: Model, data, *, jacobian: bool) -> tuple[list[Variable], list[bool]]:
    """The summed logp term of each variable and potential, and whether it reads the data."""
    variables = model.free_RVs + model.observed_RVs + model.potentials
    terms = [pt.sum(term) for term in model.logp(variables, jacobian=jacobian, sum=False)]
    # What reads only the data's shape (shape=X_mb.shape[1]) does not read the data.
    reads = [any(v in data for v in values_read_by([term])) for term in terms]
    for rv, term_reads in zip(model.free_RVs, reads):
        if term_reads:
            raise StreamingNotSupportedError(
                f"The prior of {rv.name!r} depends on minibatched data, so the model has no "
                "full-data log density to evaluate. Only observed variables and potentials may "
                "read a pm.Minibatch; give prior parameters as constants or pm.Data."
            )
    return terms, reads


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral):
        raise TypeError(
            f"chunk_size must be an integer number of rows, got {type(chunk_size).__name__} "
            f"{chunk_size!r}."
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 row, got {chunk_size}.")
    return int(chunk_size)


class FullDataLogp:
    """The exact full-data log density of a model whose observed data is minibatched.

    The model's log density is split in two. The terms that read no streamed or minibatched
    data (priors, Jacobians, observations held in memory) are evaluated once per pass. The terms
    that do (the observed log-likelihood of the minibatch) are summed over the whole dataset,
    chunk by chunk, without the ``N / batch_size`` scaling that ``total_size`` applies to a
    minibatch. The result equals the log density of the same model built on the full data, up
    to floating-point summation order.

    One pass reads the data once and serves any number of points: ``P`` points with their
    gradients (L-BFGS iterates) and ``Q`` points without (ELBO and importance draws) are
    evaluated together, vectorised over the points, chunk by chunk.

    Parameters
    ----------
    model : Model, optional
        A model reading ``pm.Minibatch(..., streaming=True)`` or upstream's in-memory
        ``pm.Minibatch``. Taken from the context if omitted.
    jacobian : bool, default True
        Include the Jacobian terms of the value transforms, as ``model.logp(jacobian=...)``.
    chunk_size : int, default 65_536
        Rows evaluated per compiled call for one point. Memory during a pass is bounded by it,
        never by the dataset: with ``P`` points evaluated together, each call takes
        ``chunk_size // P`` rows (at least one), so its intermediate arrays hold about
        ``chunk_size`` values each whatever the number of points. Larger values mean fewer
        calls (each costs some 10 µs of overhead) and more memory: 65,536 rows of a linear
        regression on 10 float64 features are 5 MB of data and 0.5 MB per intermediate.
        A pass also holds one chunk as the source yields it (and ``READ_AHEAD`` more for
        sources other than arrays in memory, read by a background thread).
    blas_cores : int or None, default 1
        Threads of the BLAS library (OpenBLAS, MKL) while a pass runs, set for the pass by
        ``threadpoolctl`` and restored after it, as ``pm.sample(blas_cores=...)`` does. A pass
        evaluates on one core while a thread reads the next chunk on another; BLAS threads
        would take that core from the reader, and for a pass's small matrix products they
        cost more than they save (up to several times the pass on a loaded 2-core machine).
        None leaves the process's setting alone; Pathfinder passes its own ``blas_cores``.
    compile_kwargs : dict, optional
        Passed to :func:`pymc.pytensorf.compile`.

    Attributes
    ----------
    ndim : int
        Length of the raveled point (the model's value variables, in ``model.value_vars`` order).
    passes : int
        Passes over the data so far.
    rows_read : int
        Rows read from the sources so far, summed over data blocks.

    Raises
    ------
    StreamingNotSupportedError
        If the model reads no minibatched data, if a source cannot be read again (a one-shot
        iterator: every pass reads it anew), or if a prior depends on minibatched data.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from pymc_extras.streaming.passes.full_data import FullDataLogp
    >>> x = np.random.default_rng(0).normal(size=1_000)
    >>> with pm.Model() as model:
    ...     x_mb = pm.Minibatch(x, batch_size=10, streaming=True)
    ...     mu = pm.Normal("mu")
    ...     obs = pm.Normal("x", mu, 1, observed=x_mb)
    >>> full = FullDataLogp(model, chunk_size=256)
    >>> value, grad = full.logp_dlogp(np.zeros(1))
    >>> with pm.Model() as in_memory:
    ...     mu = pm.Normal("mu")
    ...     obs = pm.Normal("x", mu, 1, observed=x)
    >>> bool(np.isclose(value, in_memory.compile_logp()({"mu": 0.0})))
    True
    """

    def __init__(
        self,
        model: Model | None = None,
        *,
        jacobian: bool = True,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        blas_cores: int | None = 1,
        compile_kwargs: dict | None = None,
    ):
        model = modelcontext(model)
        self.chunk_size = chunk_size
        self.blas_cores = blas_cores
        compile_kwargs = dict(compile_kwargs or {})
        self.model = model
        self.passes = 0
        self.rows_read = 0

        full_model, data = full_data_model(model)
        terms, reads = _logp_terms(full_model, data, jacobian=jacobian)
        by_name = {var.name: var for var in full_model.value_vars}
        value_vars = [by_name[var.name] for var in model.value_vars]  # upstream's order

        groups = self._group(data, terms, reads)
        sums = [variadic_add(*(t for t, r in zip(terms, reads) if not r))]
        sums += [variadic_add(*block_terms) for _, block_terms in groups]

        self._point = model.initial_point()
        self.ndim = int(sum(np.size(self._point[v.name]) for v in model.value_vars))
        (once_logp, *block_logps), x = join_nonshared_inputs(self._point, sums, value_vars)
        self._dtype = np.dtype(x.dtype)  # the model's: floatX, for value variables
        # The terms without data, evaluated here once per pass (on a cluster too).
        self._once_fn = self._compile(x, once_logp, [], compile_kwargs)
        self._blocks = []
        for (members, _), logp in zip(groups, block_logps):
            sources = [member.source() for member in members]
            placeholders = [p for member in members for p in member.placeholders]
            source = sources[0] if len(sources) == 1 else ZippedSource(sources)
            kernel = _LogpPass(self._compile(x, logp, placeholders, compile_kwargs))
            declared = [m.num_rows for m in members if m.num_rows is not None]
            runner = PassRunner(kernel, source, placeholders, num_rows=next(iter(declared), None))
            self._blocks.append(_DataBlock(source, placeholders, runner))

    # --- building -------------------------------------------------------------------------
    @staticmethod
    def _group(data, terms, reads) -> list[tuple[list[MinibatchedData], list[Variable]]]:
        """Blocks of data terms: terms reading the same minibatched data are summed together."""
        blocks: list[tuple[list[MinibatchedData], list[Variable]]] = []
        for term, term_reads in zip(terms, reads):
            if not term_reads:
                continue
            found = (data[v] for v in ancestors([term]) if v in data)
            members = list({id(member): member for member in found}.values())
            block_terms = [term]
            for block in [b for b in blocks if any(m in b[0] for m in members)]:
                blocks.remove(block)
                members = block[0] + [m for m in members if m not in block[0]]
                block_terms = block[1] + block_terms
            blocks.append((members, block_terms))
        return blocks

    @staticmethod
    def _compile(x, logp, placeholders, compile_kwargs) -> Function:
        """Compile ``logp`` and its gradient, vectorised over points, as one call of a pass.

        Inputs: points with gradient, points without, then ``placeholders`` (the rows of data;
        none for the terms without data). Outputs: the log density and gradient at the first
        points, the log density at the others. Compiled in :func:`~pymc_extras.streaming.
        pass_mode.pass_mode`: on Numba, the code releases the GIL while it runs, so that the
        reader thread decodes meanwhile.
        """
        grad = cast(Variable, pytensor.grad(logp, x, disconnected_inputs="ignore"))
        grad_points, value_points = (pt.matrix(name, dtype=x.dtype) for name in ("g", "v"))
        outputs = [
            *vectorize_graph([logp, grad], replace={x: grad_points}),
            cast(Variable, vectorize_graph(logp, replace={x: value_points})),
        ]
        options = {"on_unused_input": "ignore", **compile_kwargs}
        options["mode"] = pass_mode(options.get("mode"))
        fn = compile([grad_points, value_points, *placeholders], outputs, **options)
        fn.trust_input = True
        return fn

    # --- evaluating -----------------------------------------------------------------------
    @property
    def chunk_size(self) -> int:
        """Rows evaluated per compiled call for one point; may be changed between passes."""
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        self._chunk_size = _check_chunk_size(value)

    @property
    def blas_cores(self) -> int | None:
        """BLAS threads while a pass runs (None: as the process has them); may be changed."""
        return self._blas_cores

    @blas_cores.setter
    def blas_cores(self, value: int | None) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(
                    f"blas_cores must be a positive number of threads or None, got {value!r}."
                )
            value = int(value)
        self._blas_cores = value

    @property
    def sources(self) -> list[Source]:
        """The source of each block of data terms (one for most models)."""
        return [block.source for block in self._blocks]

    def evaluate(
        self,
        grad_points: np.ndarray | None = None,
        value_points: np.ndarray | None = None,
    ) -> PassResult:
        """Evaluate the full-data log density at many points in one pass over the data.

        Parameters
        ----------
        grad_points : ndarray, shape (P, n), optional
            Points whose log density and gradient are wanted.
        value_points : ndarray, shape (Q, n), optional
            Points whose log density alone is wanted.

        Returns
        -------
        PassResult

        Raises
        ------
        SourceDataError
            If a source yields more or fewer rows than it declares (its row count, or the
            ``total_size`` it was given): every pass must read the same rows.
        Exception
            Whatever the source raised while being read, with its original type and traceback.
        """
        grad_points = self._as_points(grad_points, "grad_points")
        value_points = self._as_points(value_points, "value_points")
        # Each call evaluates in the model's dtype; the sums are kept in float64, added in the
        # order of the data (chunk by chunk here, partition by partition on a cluster).
        once = self._once_fn(grad_points, value_points)
        logp, grad, value_logp = (np.array(out, dtype=np.float64) for out in once)
        rows_per_call = max(1, self.chunk_size // max(len(grad_points) + len(value_points), 1))
        inputs = (grad_points, value_points, rows_per_call)
        rows = 0
        limit = nullcontext()
        if self.blas_cores is not None:
            limit = threadpool_limits(limits=self.blas_cores, user_api="blas")
        with limit:
            for block in self._blocks:
                with block.runner.run(inputs) as partials:
                    for sums in partials:
                        logp += sums.logp
                        grad += sums.grad
                        value_logp += sums.value_logp
                        rows += sums.rows
        # Counted once the pass is whole: a pass that failed (a source's error, or rows other
        # than the source declares) returns nothing.
        self.passes += 1
        self.rows_read += rows
        return PassResult(logp=logp, grad=grad, value_logp=value_logp)

    @property
    def traffic(self) -> list[PassTraffic | None]:
        """What the last pass moved on a cluster, per block of data terms (None: read here)."""
        return [block.runner.traffic for block in self._blocks]

    def close(self) -> None:
        """Release the compiled evaluation that a Dask cluster's workers keep between passes.

        Dropping the object does the same; a later pass sends it again.
        """
        for block in self._blocks:
            block.runner.close()

    def _as_points(self, points, name: str) -> np.ndarray:
        if points is None:
            return np.empty((0, self.ndim), dtype=self._dtype)
        points = np.asarray(points)
        if points.ndim != 2 or points.shape[1] != self.ndim:
            raise ValueError(
                f"{name} must have shape (number of points, {self.ndim}), one raveled point "
                f"per row, got shape {points.shape}."
            )
        return np.ascontiguousarray(points, dtype=self._dtype)

    def logp_dlogp(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Full-data log density and gradient at one raveled point (one pass)."""
        result = self.evaluate(grad_points=np.asarray(x, dtype=np.float64)[None])
        return float(result.logp[0]), result.grad[0]

    def logp(self, points: np.ndarray) -> np.ndarray:
        """Full-data log density at each row of ``points`` (one pass)."""
        return self.evaluate(value_points=points).value_logp
