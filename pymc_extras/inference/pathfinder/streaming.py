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
"""Pathfinder on minibatched data: all paths share exact full-data passes over the data."""

import logging
import threading

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc.blocking import DictToArrayBijection
from pymc.initial_point import make_initial_point_fn
from pymc.model.core import Point
from pymc.pytensorf import compile
from pymc.util import _get_seeds_per_chain
from pymc_extras.inference.pathfinder.bfgs_sample import _bfgs_sample_pt, alpha_step_numpy
from pymc_extras.inference.pathfinder.lbfgs import (
    LBFGS,
    LBFGSConfig,
    LBFGSException,
    LBFGSInitFailed,
    LBFGSStatus,
    LBFGSStreamingCallback,
    _check_lbfgs_curvature_condition,
)
from pymc_extras.inference.pathfinder.results import (
    PathfinderResult,
    PathInvalidLogP,
    PathInvalidLogQ,
    PathStatus,
    SingleStepPathException,
)

from pymc import Model
from pymc_extras.streaming.full_data import DEFAULT_CHUNK_SIZE, FullDataLogp
from pymc_extras.streaming.passes import reads_minibatched_data

__all__ = ["FullDataPaths", "SharedPasses", "full_data_paths"]

logger = logging.getLogger(__name__)


def full_data_paths(
    model: Model,
    *,
    num_draws: int,
    num_elbo_draws: int,
    jitter: float,
    lbfgs_config: LBFGSConfig,
    max_init_retries: int,
    jacobian_correction: bool,
    compile_kwargs: dict[str, Any] | None,
    chunk_size: int | None,
    parallel: bool,
) -> "FullDataPaths | None":
    """Pathfinder paths on exact full-data passes, for a model that reads ``pm.Minibatch``.

    Returns None for a model that reads no minibatch (streaming or in memory), which upstream's
    Pathfinder then fits as it always has. Called by ``multipath_pathfinder``; the options are
    those of :func:`pymc_extras.inference.fit_pathfinder`.

    Parameters
    ----------
    chunk_size : int, optional
        Rows of data evaluated per compiled call for one point, default
        :data:`pymc_extras.streaming.full_data.DEFAULT_CHUNK_SIZE` (65,536). Memory during a pass is
        bounded by it; see :class:`pymc_extras.streaming.full_data.FullDataLogp`.
    parallel : bool
        Accepted for compatibility: the paths always run side by side in this process, because
        one read of the data then serves every path (see :class:`SharedPasses`).
    """
    if not reads_minibatched_data(model):
        return None
    if parallel:
        logger.info(
            "Pathfinder on minibatched data runs its paths side by side in this process, so "
            "that each pass over the data serves all of them; parallel=True starts no workers."
        )
    return FullDataPaths(
        model,
        num_draws=num_draws,
        num_elbo_draws=num_elbo_draws,
        jitter=jitter,
        lbfgs_config=lbfgs_config,
        max_init_retries=max_init_retries,
        jacobian_correction=jacobian_correction,
        compile_kwargs=compile_kwargs or {},
        chunk_size=DEFAULT_CHUNK_SIZE if chunk_size is None else chunk_size,
    )


class SharedPasses:
    """Run jobs side by side in threads; one pass over the data answers all their requests.

    Each job runs in its own thread and asks for full-data evaluations through a
    :class:`_PassClient`, which blocks until the answer arrives. When every unfinished job is
    waiting, the calling thread runs one pass of the :class:`FullDataLogp` for all requests
    together. Only one job runs Python code at a time (a baton passed at each request), so jobs
    may share compiled functions. Each pass holds the ``k``-th request of every job still
    running, whatever the timing of the threads, so the results are reproducible.

    Failures: an error raised by a job or by a pass (a source's error, with its original type
    and traceback) stops the other jobs at their next request and is raised in the calling
    thread once every thread has ended. No thread outlives :meth:`run`.
    """

    def __init__(self, evaluator: FullDataLogp):
        self.evaluator = evaluator
        self._condition = threading.Condition()
        self._baton = threading.Lock()
        self._waiting: dict[int, tuple[str, np.ndarray]] = {}
        self._answers: dict[int, Any] = {}
        self._running: set[int] = set()
        self._abandoned = False

    def run(self, jobs: list[Callable[["_PassClient"], Any]]) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, result)`` of each job as it finishes."""
        finished: list[tuple[int, Any]] = []
        errors: list[BaseException] = []
        self._abandoned = False
        self._running = set(range(len(jobs)))

        def work(index: int, job) -> None:
            client = _PassClient(self, index)
            try:
                with client.turn():
                    result = job(client)
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

    def _request(self, index: int, kind: str, points: np.ndarray):
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
    """Ends a job whose requests will never be answered (another job or a pass failed)."""


class _PassClient:
    """A job's handle on the shared passes: full-data evaluations that block until answered."""

    def __init__(self, passes: SharedPasses, index: int):
        self._passes = passes
        self._index = index
        self._cached: tuple[np.ndarray, tuple] | None = None
        self.evaluations = 0  # distinct points whose value and gradient were asked for

    def turn(self):
        return self._passes._baton

    def neg_logp_dlogp(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(-logp, -dlogp)`` at ``x``, as L-BFGS minimises; the last point is cached."""
        x = np.asarray(x, dtype=np.float64)
        if self._cached is None or not np.array_equal(self._cached[0], x):
            self.evaluations += 1
            logp, grad = self._passes._request(self._index, "grad", x.copy())
            self._cached = (x.copy(), (-np.asarray(logp), -grad))
        return self._cached[1]

    def logp(self, points: np.ndarray) -> np.ndarray:
        """Full-data log density at each row of ``points``."""
        points = np.asarray(points, dtype=np.float64)
        if not len(points):
            return np.zeros(0)
        return self._passes._request(self._index, "value", points)


class _DeferredElboCallback(LBFGSStreamingCallback):
    """Upstream's step callback, with the log densities of the ELBO draws left for later.

    Each accepted step is checked, updates the inverse-Hessian estimate and draws its ELBO
    sample exactly as upstream does (same random numbers, in the same order), but the full-data
    log densities of all steps' draws are computed together after L-BFGS ends, in one pass
    shared with the other paths (:meth:`score`).
    """

    def __init__(self, *, sample_fn, **kwargs):
        super().__init__(sample_logp_fn=None, **kwargs)
        self._sample_fn = sample_fn
        self._steps: list[dict] = []

    def __call__(self, intermediate) -> None:
        # Upstream's LBFGSStreamingCallback.__call__, up to its sampling.
        if hasattr(intermediate, "x"):
            x = np.asarray(intermediate.x, dtype=np.float64)
            value = float(intermediate.fun)
            g = getattr(intermediate, "jac", None)
            g = self.value_grad_fn(x)[1] if g is None else np.asarray(g, dtype=np.float64)
        else:
            x = np.asarray(intermediate, dtype=np.float64)
            value, g = self.value_grad_fn(x)
        s = x - self.x_prev
        z = g - self.g_prev
        if not (np.all(np.isfinite(g)) and np.isfinite(value)):
            return None
        if not _check_lbfgs_curvature_condition(s, z, self.epsilon):
            return None
        alpha = alpha_step_numpy(self.alpha_prev, s, z)
        self.win_idx = (self.win_idx + 1) % self.J
        self.s_win[:, self.win_idx] = s
        self.z_win[:, self.win_idx] = z
        u = self._rng.standard_normal((self.num_elbo_draws, self._N))
        state = {
            "alpha": alpha.copy(),
            "s_win": self.s_win.copy(),
            "z_win": self.z_win.copy(),
            "x": x.copy(),
            "g": g.copy(),
        }
        phi, logQ, _ = self._sample_fn(x, g, alpha, self.s_win, self.z_win, u)
        self._steps.append({"state": state, "phi": np.asarray(phi), "logQ": np.asarray(logQ)})
        self.alpha_prev = alpha
        self.x_prev = x.copy()
        self.g_prev = g.copy()
        self.step_count += 1
        if self.progress_callback is not None:
            self.progress_callback({"iteration": self.step_count})
        return None

    def score(self, logp: Callable[[np.ndarray], np.ndarray]) -> None:
        """Estimate every step's ELBO from one request, and keep the best step as upstream."""
        if not self._steps:
            return
        logP_all = logp(np.concatenate([step["phi"] for step in self._steps]))
        for index, (step, logP) in enumerate(
            zip(self._steps, np.split(logP_all, len(self._steps)))
        ):
            finite = np.isfinite(logP)
            if not np.any(finite):
                elbo = -np.inf
            else:
                elbo = float(np.mean(np.where(finite, logP, -np.inf) - step["logQ"]))
                if not np.isfinite(elbo):
                    elbo = -np.inf
            if np.isfinite(elbo):
                self.any_valid = True
            if elbo > self.best_elbo:
                self.best_elbo = elbo
                self.best_state = step["state"]
                self.best_step_idx = index
        self._steps = []
        if self.progress_callback is not None:
            self.progress_callback({"best_elbo": self.best_elbo})


def _compile_sample_fn(N: int, J: int, compile_kwargs: dict):
    """Upstream's draws from the L-BFGS Gaussian approximation, without the model's logp."""
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


class FullDataPaths:
    """Compiled full-data Pathfinder paths for one model; see :func:`full_data_paths`.

    The per-path algorithm is upstream's ``make_single_pathfinder_fn`` (same seeds, jitter,
    retries, statuses and random draws), with every log density evaluated on the full data
    through :class:`SharedPasses`. A path makes one request per distinct L-BFGS evaluation,
    one for the ELBO draws of all its steps, and one for its final draws: so a run reads the
    data at most (the largest path's L-BFGS evaluations + 2) times, plus retries.

    Attributes
    ----------
    evaluator : FullDataLogp
        The full-data log density; ``evaluator.passes`` and ``evaluator.rows_read`` count reads.
    evaluations : list of int
        L-BFGS evaluations of each path in the last run (excluding retries' earlier attempts).
    """

    def __init__(
        self,
        model: Model,
        *,
        num_draws: int,
        num_elbo_draws: int,
        jitter: float,
        lbfgs_config: LBFGSConfig,
        max_init_retries: int,
        jacobian_correction: bool,
        compile_kwargs: dict[str, Any],
        chunk_size: int,
    ):
        self.evaluator = FullDataLogp(
            model,
            jacobian=jacobian_correction,
            chunk_size=chunk_size,
            compile_kwargs=compile_kwargs,
        )
        ip = Point(make_initial_point_fn(model=model)(None), model=model)
        self.x_base = DictToArrayBijection.map(ip).data
        self.num_draws = num_draws
        self.num_elbo_draws = num_elbo_draws
        self.jitter = jitter
        self.config = lbfgs_config
        self.max_init_retries = max_init_retries
        self.sample_fn = _compile_sample_fn(len(self.x_base), lbfgs_config.maxcor, compile_kwargs)
        self.evaluations: list[int] = []

    def generator(
        self, seeds: list[int], progress_callbacks: list[Callable | None] | None = None
    ) -> Iterator[tuple[int, PathfinderResult]]:
        """Run one path per seed, side by side; yield ``(path, result)`` as each finishes."""
        callbacks = progress_callbacks or [None] * len(seeds)
        self.evaluations = [0] * len(seeds)

        def job(path: int):
            def run(client: _PassClient) -> PathfinderResult:
                try:
                    return self._path(seeds[path], callbacks[path], client)
                finally:
                    self.evaluations[path] = client.evaluations

            return run

        passes = SharedPasses(self.evaluator)
        yield from passes.run([job(path) for path in range(len(seeds))])

    def _path(
        self, random_seed: int, progress_callback: Callable | None, client: _PassClient
    ) -> PathfinderResult:
        """Upstream's ``single_pathfinder_fn``, on full-data passes."""
        config, N = self.config, len(self.x_base)
        if progress_callback is not None:
            progress_callback({"status": "running"})
        lbfgs = LBFGS(
            client.neg_logp_dlogp,
            config.maxcor,
            config.maxiter,
            config.ftol,
            config.gtol,
            config.maxls,
            config.epsilon,
        )
        lbfgs_status = LBFGSStatus.LBFGS_FAILED
        try:
            base_init, elbo_seed, final_seed = _get_seeds_per_chain(random_seed, 3)
            for attempt in range(self.max_init_retries + 1):
                try:
                    rng = np.random.default_rng(base_init + attempt)
                    x0 = self.x_base + rng.uniform(-self.jitter, self.jitter, size=N)
                    client.evaluations = 0
                    callback = _DeferredElboCallback(
                        sample_fn=self.sample_fn,
                        value_grad_fn=client.neg_logp_dlogp,
                        x0=x0,
                        num_elbo_draws=self.num_elbo_draws,
                        rng=np.random.default_rng(elbo_seed + attempt),
                        J=config.maxcor,
                        epsilon=config.epsilon,
                        progress_callback=progress_callback,
                    )
                    lbfgs_niter, lbfgs_status = lbfgs.minimize_streaming(callback, x0)
                    if lbfgs_status in {
                        LBFGSStatus.INIT_FAILED,
                        LBFGSStatus.INIT_FAILED_LOW_UPDATE_PCT,
                    }:
                        raise LBFGSInitFailed(lbfgs_status)
                    if lbfgs_status == LBFGSStatus.LBFGS_FAILED:
                        raise LBFGSException()
                    if lbfgs_niter < 2:
                        raise SingleStepPathException()
                    callback.score(client.logp)
                    if not callback.any_valid:
                        raise PathInvalidLogP()
                    best = callback.best_state
                    u_final = np.random.default_rng(final_seed).standard_normal((self.num_draws, N))
                    if progress_callback is not None:
                        progress_callback({"status": "sampling"})
                    phi, logQ, inv_hessian_diag = self.sample_fn(
                        best["x"], best["g"], best["alpha"], best["s_win"], best["z_win"], u_final
                    )
                    logQ = np.asarray(logQ)[None]
                    if np.all(~np.isfinite(logQ)):
                        raise PathInvalidLogQ()
                    logP = client.logp(np.asarray(phi))[None]
                    break
                except (
                    LBFGSInitFailed,
                    SingleStepPathException,
                    PathInvalidLogP,
                    PathInvalidLogQ,
                ) as error:
                    if attempt < self.max_init_retries:
                        if progress_callback is not None:
                            progress_callback({"status": f"retry {attempt + 1}"})
                        continue
                    failed_lbfgs = isinstance(error, LBFGSInitFailed)
                    if progress_callback is not None:
                        progress_callback({"status": "lbfgs_fail" if failed_lbfgs else "failed"})
                    if failed_lbfgs:
                        return PathfinderResult(
                            lbfgs_status=error.status, path_status=PathStatus.LBFGS_FAILED
                        )
                    return PathfinderResult(lbfgs_status=lbfgs_status, path_status=error.status)
        except LBFGSException as error:
            if progress_callback is not None:
                progress_callback({"status": "lbfgs_fail"})
            return PathfinderResult(lbfgs_status=error.status, path_status=PathStatus.LBFGS_FAILED)

        elbo_argmax = callback.best_step_idx
        path_status = PathStatus.ELBO_ARGMAX_AT_ZERO if elbo_argmax == 0 else PathStatus.SUCCESS
        if progress_callback is not None:
            status = "elbo@0" if path_status == PathStatus.ELBO_ARGMAX_AT_ZERO else "ok"
            progress_callback({"status": status, "lbfgs_steps": int(lbfgs_niter)})
        return PathfinderResult(
            samples=np.asarray(phi)[None],
            logP=logP,
            logQ=logQ,
            lbfgs_niter=lbfgs_niter,
            elbo_argmax=elbo_argmax,
            inv_hessian_diag=np.asarray(inv_hessian_diag)[None],
            lbfgs_status=lbfgs_status,
            path_status=path_status,
        )
