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
"""Pathfinder on minibatched data: its log densities by exact full-data passes, one per round."""

import logging
import threading

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc.model import Model
from pymc.pytensorf import compile
from pytensor.compile.executor import Function

from pymc_extras.inference.pathfinder.bfgs_sample import _bfgs_sample_pt
from pymc_extras.inference.pathfinder.lbfgs import LBFGSConfig
from pymc_extras.streaming.passes.full_data import DEFAULT_CHUNK_SIZE, FullDataLogp
from pymc_extras.streaming.passes.minibatched_data import reads_minibatched_data

__all__ = ["FullDataPathfinder", "SharedPasses", "full_data_pathfinder"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def full_data_pathfinder(
    model: Model,
    maxcor: int | None,
    jacobian: bool,
    compile_kwargs: dict[str, Any] | None = None,
    chunk_size: int | None = None,
) -> "FullDataPathfinder | None":
    """Pathfinder's log densities on exact full-data passes, for a model that reads minibatches.

    Called by ``multipath_pathfinder``. Returns None for a model that reads no ``pm.Minibatch``
    (streaming or in memory), which upstream's Pathfinder fits as it always has.

    Parameters
    ----------
    model : Model
        The model Pathfinder fits.
    maxcor : int or None
        L-BFGS history size (``LBFGSConfig.maxcor``), a dimension of the compiled draws; None
        takes ``LBFGSConfig``'s default for the model's number of parameters.
    jacobian : bool
        Include the Jacobians of the value transforms (``jacobian_correction``).
    compile_kwargs : dict, optional
        Passed to :func:`pymc.pytensorf.compile`.
    chunk_size : int, optional
        Rows of data evaluated per compiled call for one point, default
        :data:`pymc_extras.streaming.passes.full_data.DEFAULT_CHUNK_SIZE` (65,536). Memory during a
        pass is bounded by it; see :class:`pymc_extras.streaming.passes.full_data.FullDataLogp`.
    """
    if not reads_minibatched_data(model):
        return None
    return FullDataPathfinder(
        model,
        maxcor=maxcor,
        jacobian=jacobian,
        compile_kwargs=compile_kwargs or {},
        chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
    )


class SharedPasses:
    """Run jobs side by side in threads; one pass over the data answers all their requests.

    Each job runs in its own thread and asks for full-data evaluations through
    :meth:`logp_dlogp` and :meth:`logp`, which block until the answer arrives. When every
    unfinished job is waiting, the calling thread runs one pass of the :class:`FullDataLogp`
    for all requests together. Only one job runs Python code at a time (a baton passed at each
    request), so jobs may share compiled functions. Each pass holds the ``k``-th request of every
    job still running, whatever the timing of the threads, so the results are reproducible.
    Called from a thread that runs no job, :meth:`logp_dlogp` and :meth:`logp` make a pass of
    their own.

    Failures: an error raised by a job or by a pass (a source's error, with its original type
    and traceback) stops the other jobs at their next request and is raised in the calling
    thread once every thread has ended. No thread outlives :meth:`run`.

    Attributes
    ----------
    evaluations : list of int
        Distinct points at which each job of the last run asked for the value and gradient (its
        L-BFGS evaluations, over all its attempts).
    """

    def __init__(self, evaluator: FullDataLogp):
        self.evaluator = evaluator
        self.evaluations: list[int] = []
        self._condition = threading.Condition()
        self._baton = threading.Lock()
        self._local = threading.local()
        self._waiting: dict[int, tuple[str, np.ndarray]] = {}
        self._answers: dict[int, Any] = {}
        self._running: set[int] = set()
        self._abandoned = False

    def run(self, jobs: Sequence[Callable[[], T]]) -> Iterator[tuple[int, T]]:
        """Yield ``(index, result)`` of each job as it finishes."""
        finished: list[tuple[int, T]] = []
        errors: list[BaseException] = []
        self._abandoned = False
        self._running = set(range(len(jobs)))
        clients = [_Client(index) for index in range(len(jobs))]

        def work(index: int, job: Callable[[], T]) -> None:
            self._local.client = clients[index]
            try:
                with self._baton:
                    result = job()
                with self._condition:
                    finished.append((index, result))
            except _Abandoned:
                pass
            except BaseException as error:  # raised again in the calling thread
                with self._condition:
                    errors.append(error)
            finally:
                with self._condition:
                    self._running.discard(index)
                    self._condition.notify_all()

        threads = [
            threading.Thread(target=work, args=(i, job), name=f"pathfinder-path-{i}", daemon=True)
            for i, job in enumerate(jobs)
        ]
        for thread in threads:
            thread.start()
        try:
            while True:
                with self._condition:
                    self._condition.wait_for(
                        lambda: errors or finished or len(self._waiting) == len(self._running)
                    )
                    if errors:
                        raise errors[0]
                    done, finished[:] = list(finished), []
                    if not done and not self._running:
                        return
                    requests = {}
                    if not done:
                        requests, self._waiting = self._waiting, {}
                yield from done
                if requests:
                    answers = self._answer(requests)
                    with self._condition:
                        self._answers.update(answers)
                        self._condition.notify_all()
        finally:
            with self._condition:
                self._abandoned = True
                self._condition.notify_all()
            for thread in threads:
                thread.join()
            self._waiting.clear()
            self._answers.clear()
            self.evaluations = [client.evaluations for client in clients]

    def logp_dlogp(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Full-data log density and gradient at ``x``; the calling job's last point is cached."""
        client = self._client()
        x = np.asarray(x, dtype=np.float64)
        if client.cached is None or not np.array_equal(client.cached[0], x):
            client.evaluations += 1
            logp, grad = self._request(client, "grad", x.copy())
            client.cached = (x.copy(), (np.asarray(logp), grad))
        return client.cached[1]

    def logp(self, points: np.ndarray) -> np.ndarray:
        """Full-data log density at each row of ``points``."""
        points = np.asarray(points, dtype=np.float64)
        if not len(points):
            return np.zeros(0)
        return self._request(self._client(), "value", points)

    def _client(self) -> "_Client":
        client = getattr(self._local, "client", None)
        if client is None:  # a thread that runs no job
            client = self._local.client = _Client(None)
        return client

    def _answer(self, requests: dict[int, tuple[str, np.ndarray]]) -> dict[int, Any]:
        """One pass over the data for every waiting request."""
        grad_ids = [i for i, (kind, _) in requests.items() if kind == "grad"]
        value_ids = [i for i, (kind, _) in requests.items() if kind == "value"]
        grad_points = np.stack([requests[i][1] for i in grad_ids]) if grad_ids else None
        value_points = np.concatenate([requests[i][1] for i in value_ids]) if value_ids else None
        result = self.evaluator.evaluate(grad_points, value_points)
        answers: dict[int, Any] = {
            i: (result.logp[k], result.grad[k]) for k, i in enumerate(grad_ids)
        }
        start = 0
        for i in value_ids:
            stop = start + len(requests[i][1])
            answers[i] = result.value_logp[start:stop]
            start = stop
        return answers

    def _request(self, client: "_Client", kind: str, points: np.ndarray):
        if client.index is None:
            return self._answer({0: (kind, points)})[0]
        index = client.index
        with self._condition:
            self._waiting[index] = (kind, points)
            self._condition.notify_all()
        self._baton.release()  # other jobs run while this one waits
        try:
            with self._condition:
                self._condition.wait_for(lambda: index in self._answers or self._abandoned)
                if index not in self._answers:
                    raise _Abandoned
                return self._answers.pop(index)
        finally:
            self._baton.acquire()


class _Abandoned(BaseException):
    """Ends a job whose requests will never be answered (another job or a pass failed).

    A ``BaseException``, so that the job's own ``except Exception`` clauses (better_optimize
    turns an ``Exception`` raised by the objective into a failed optimisation) let it through.
    """


class _Client:
    """One job's state: its index in :meth:`SharedPasses.run` (None outside it) and its cache."""

    def __init__(self, index: int | None):
        self.index = index
        self.cached: tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None = None
        self.evaluations = 0


def _compile_sample_fn(N: int, J: int, compile_kwargs: dict) -> Function:
    """Upstream's draws from the L-BFGS Gaussian approximation, without the model's logp.

    Compiled as upstream's ``make_pathfinder_sample_fn`` compiles them, from the same graph
    (``_bfgs_sample_pt``), with the model's log density left to a full-data pass.
    """
    x, g, alpha = (pt.vector(name, dtype="float64") for name in ("x", "g", "alpha"))
    s_win, z_win, u = (pt.matrix(name, dtype="float64") for name in ("s_win", "z_win", "u"))
    outputs = _bfgs_sample_pt(x, g, alpha, s_win, z_win, u, J, N)
    fn = compile(
        [pytensor.In(v, borrow=True) for v in (x, g, alpha, s_win, z_win, u)],
        list(outputs),
        **compile_kwargs,
    )
    fn.trust_input = True
    return fn


class FullDataPathfinder:
    """Upstream's Pathfinder paths, with every log density evaluated on the full data.

    Upstream's ``make_single_pathfinder_fn`` compiles two functions of the model's log density:
    ``neg_logp_dlogp_func(x)`` for L-BFGS and ``sample_logp_func(x, g, alpha, s_win, z_win, u)``
    for the draws of the ELBO and of the final approximation. :attr:`logp_functions` are their
    full-data equivalents, which it takes instead (``make_single_pathfinder_fn(...,
    logp_functions=...)``); everything else a path does (seeds, jitter, retries, statuses, the
    choice of the best step, progress) is upstream's own code. :meth:`make_generator` replaces
    upstream's ``make_generator``: it runs each path in its own thread, and each pass over the
    data answers the pending request of every path still running (:class:`SharedPasses`).

    A path requests one pass per distinct L-BFGS evaluation, one per accepted step (its ELBO
    draws) and one for its final draws; a run reads the data once per round of requests, so
    about as many times as its longest path makes requests.

    Attributes
    ----------
    evaluator : FullDataLogp
        The full-data log density; ``evaluator.passes`` and ``evaluator.rows_read`` count reads.
    passes : SharedPasses
        Runs the paths; ``passes.evaluations`` counts each path's L-BFGS evaluations.
    """

    def __init__(
        self,
        model: Model,
        *,
        maxcor: int | None,
        jacobian: bool,
        compile_kwargs: dict[str, Any],
        chunk_size: int,
    ):
        self.evaluator = FullDataLogp(
            model, jacobian=jacobian, chunk_size=chunk_size, compile_kwargs=compile_kwargs
        )
        self.passes = SharedPasses(self.evaluator)
        N = self.evaluator.ndim
        J = LBFGSConfig(maxcor=maxcor).set_default_maxcor(N).maxcor
        self._sample_fn = _compile_sample_fn(N, cast(int, J), compile_kwargs)

    @property
    def logp_functions(self) -> tuple[Callable, Callable]:
        """``(neg_logp_dlogp_func, sample_logp_func)`` for ``make_single_pathfinder_fn``."""
        return self.neg_logp_dlogp, self.sample_logp

    def neg_logp_dlogp(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(-logp, -dlogp)`` at ``x``, as L-BFGS minimises (upstream's ``neg_logp_dlogp_func``)."""
        logp, grad = self.passes.logp_dlogp(x)
        return -logp, -grad

    def sample_logp(
        self,
        x: np.ndarray,
        g: np.ndarray,
        alpha: np.ndarray,
        s_win: np.ndarray,
        z_win: np.ndarray,
        u: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(phi, logQ, logP, inv_hessian_diag)`` as upstream's ``sample_logp_func``.

        The draws ``phi`` and their ``logQ`` come from upstream's graph; ``logP``, their
        full-data log density, from a pass.
        """
        phi, logQ, inv_hessian_diag = self._sample_fn(x, g, alpha, s_win, z_win, u)
        return phi, logQ, self.passes.logp(phi), inv_hessian_diag

    def make_generator(
        self,
        parallel: bool,
        fn: Callable[[int, Callable | None], T],
        seeds: list[int],
        cores: int,
        blas_cores: int | None = None,
        progress_callbacks: list[Callable | None] | None = None,
        mp_ctx: Any = None,
    ) -> Iterator[tuple[int, T]]:
        """Run ``fn(seed, progress_callback)`` for each seed side by side; yield ``(path, result)``.

        Takes the arguments of upstream's ``make_generator``. The paths always run in threads of
        this process, whatever ``parallel`` and ``cores`` say, because one read of the data then
        serves every path: worker processes would each read all of it at every evaluation.
        The passes run in the calling thread with ``blas_cores`` BLAS threads, a worker's share
        of upstream's ``blas_cores`` (one, by default), or the process's own if it is None.
        """
        if parallel:
            logger.info(
                "Pathfinder on minibatched data runs its paths side by side in this process, so "
                "that each pass over the data serves all of them; parallel=True starts no workers."
            )
        callbacks = progress_callbacks or [None] * len(seeds)
        self.evaluator.blas_cores = None if blas_cores is None else max(1, blas_cores)

        def job(seed: int, callback: Callable | None) -> Callable[[], T]:
            return lambda: fn(seed, callback)

        try:
            yield from self.passes.run([job(seed, cb) for seed, cb in zip(seeds, callbacks)])
        finally:
            # What the workers of a Dask cluster keep between passes is released with the fit.
            self.evaluator.close()
