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
"""A stopping rule for stochastic optimisation on a noisy streamed objective, window by window."""

import dataclasses
import math
import numbers

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from arviz_stats.base import array_stats
from pymc.model import Model
from pymc.streaming.stream import streams_in
from pymc.variational.callbacks import Callback
from scipy.stats import norm

__all__ = ["EarlyStopping", "fit_until_converged"]


@dataclass(frozen=True)
class WindowSummary:
    """What the rule saw in one window of steps.

    Attributes
    ----------
    step : int
        The last step of the window (counted over the whole optimisation, from 1).
    loss : float
        The mean loss (negative ELBO) over the window.
    loss_se : float
        Its Monte Carlo standard error: from the noise around the window's linear trend, and
        its effective sample size.
    improvement : float
        How much lower the mean loss is than the best (lowest) mean of the earlier windows
        (NaN for the first window and with ``on="parameters"``).
    improvement_se : float
        The standard error of ``improvement``.
    drift : float
        With ``on="parameters"``, the largest move of a parameter's mean over the window from
        its mean over the previous window, in units of the move that counts as none (``atol``
        or the means' noise): at most 1 is stationary. NaN otherwise, and for the first window.
    converged : bool
        Whether the window met the rule: no significant improvement (``on="elbo"``), or
        stationary parameters (``on="parameters"``).
    """

    step: int
    loss: float
    loss_se: float
    improvement: float
    improvement_se: float
    drift: float
    converged: bool


def _flatten(params) -> np.ndarray:
    if isinstance(params, Mapping):
        return np.concatenate([np.ravel(np.asarray(v, dtype=np.float64)) for v in params.values()])
    if isinstance(params, list | tuple):
        return np.concatenate(
            [np.ravel(np.asarray(p.get_value(), dtype=np.float64)) for p in params]
        )
    return np.ravel(np.asarray(params, dtype=np.float64))


def _mean_se(losses: np.ndarray) -> float:
    """Standard error of a window's mean loss, from its noise around the window's trend.

    The noise is what remains after a straight line is fitted to the window, so that a loss
    still falling steeply does not pass for noise; its autocorrelation is accounted for by
    ArviZ's Monte Carlo standard error (effective sample size).
    """
    if losses.size < 4:
        return np.inf
    steps = np.arange(losses.size)
    residuals = losses - np.polyval(np.polyfit(steps, losses, 1), steps)
    if not np.ptp(residuals) > 0:
        return 0.0
    return float(array_stats.mcse(residuals[None], method="mean"))


def steps_per_epoch(model: Model) -> int:
    """Steps of one epoch of the model's streams: its rows over its batch size (the longest)."""
    streams = streams_in(list(model.rvs_to_values.values()) + model.observed_RVs + model.potentials)
    if not streams or any(stream.num_rows is None for stream in streams):
        raise ValueError(
            "window='epoch' needs a model reading pm.Minibatch(..., streaming=True) from a source "
            "that knows its number of rows; give window=<steps> instead."
        )
    return max(math.ceil(stream.num_rows / stream.batch_size) for stream in streams)


class EarlyStopping(Callback):
    """Stop a stochastic fit when its noisy objective or its parameters stop moving.

    Each step of streaming ADVI sees a new batch, so its loss (the negative ELBO estimate) is
    noisy, and a rule on the last few values (``CheckParametersConvergence``) either stops on a
    lucky step or never stops. This rule looks at whole windows of steps (an epoch of the data
    by default):

    - ``on="elbo"``: the window's mean loss against the best (lowest) window mean so far. A
      window improves on it when it is lower by more than ``z`` standard errors of the
      difference (each window's from its noise around its own trend and its effective sample
      size, so autocorrelated noise counts as such) and by more than ``rtol`` of the loss. The
      fit has converged when ``patience`` windows in a row do not: more steps no longer
      detectably lower the loss. A loss still falling slowly beats the best of a few windows
      back, so it keeps going.
    - ``on="parameters"``: the variational parameters, recorded ``snapshots`` times per window
      and averaged over it, which smooths the optimiser's jitter (iterate averaging, Dhaka et
      al. 2020). They are stationary when no parameter's window mean moved from the previous
      window's by more than ``atol`` or ``z`` standard errors of the two means (from the
      windows' effective sample sizes; ``z`` raised to a Bonferroni bound over the
      parameters): ``CheckParametersConvergence`` on window means instead of single noisy
      iterates. It watches the approximation's scales (``rho``, ``*_scale``), which barely move
      the ELBO.

    It stops after ``patience`` consecutive windows meet the rule (Keras' early stopping, on
    window means and with the noise as the threshold). Use it as a ``pm.fit``
    callback (it raises ``StopIteration``, which ends ``pm.fit`` cleanly), or with
    pymc-extras' ``Trainer`` through :func:`fit_until_converged`; :meth:`update` takes the
    losses (and parameters) of any other loop.

    Parameters
    ----------
    window : int or "epoch", default "epoch"
        Steps per window, or one epoch of the model's streams (rows ÷ batch size).
    on : {"elbo", "parameters"}, default "elbo"
        What to watch.
    z : float, default 2.0
        An improvement counts when larger than ``z`` standard errors.
    rtol : float, default 1e-4
        An improvement smaller than this share of the loss counts as none, however precise.
    atol : float, default 0.01
        With ``on="parameters"``: the largest move of a parameter's window mean that counts as
        none (0.01 of a log scale is a 1% change of a standard deviation).
    patience : int, default 3
        Consecutive windows without improvement (or with stationary parameters) needed to stop.
    snapshots : int, default 100
        Parameter values recorded per window with ``on="parameters"``.
    min_steps : int, default 0
        Never stop before this many steps.
    average : bool, default False
        When it stops, set the parameters to their mean over the last window (iterate
        averaging; Polyak & Juditsky 1992, Dhaka et al. 2020). A constant learning rate keeps
        the iterates jittering around the optimum, and on large data that jitter can be larger
        than the posterior's own standard deviation; the window mean removes most of it.

    Attributes
    ----------
    history : list of WindowSummary
        One entry per window seen.
    converged : bool
        Whether the rule has been met.
    stopped_at : int or None
        The step it was met at.
    averaged : ndarray or None
        The parameters' mean over the last window, raveled (when they are recorded).

    References
    ----------
    .. [1] Dhaka, A. K., Catalina, A., Andersen, M. R., Magnusson, M., Huggins, J., & Vehtari, A.
       Robust, Accurate Stochastic Optimization for Variational Inference. NeurIPS (2020).
    .. [2] Polyak, B. T., & Juditsky, A. B. Acceleration of Stochastic Approximation by Averaging.
       SIAM Journal on Control and Optimization 30(4) (1992).
    .. [3] Welandawe, M., Andersen, M. R., Vehtari, A., & Huggins, J. H. A Framework for
       Improving the Reliability of Black-box Variational Inference. arXiv:2203.15945 (2022).

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.convergence import EarlyStopping
    >>> y = np.random.default_rng(0).normal(2.0, 1.0, size=20_000)
    >>> with pm.Model():
    ...     y_mb = pm.Minibatch(y, batch_size=200, streaming=True)
    ...     mu = pm.Normal("mu", 0, 10)
    ...     obs = pm.Normal("y", mu, 1, observed=y_mb)
    ...     stop = EarlyStopping(window="epoch")
    ...     approx = pm.fit(50_000, callbacks=[stop], random_seed=1, progressbar=False)
    >>> stop.converged, stop.stopped_at < 50_000
    (True, True)
    """

    def __init__(
        self,
        *,
        window: int | Literal["epoch"] = "epoch",
        on: Literal["elbo", "parameters"] = "elbo",
        z: float = 2.0,
        rtol: float = 1e-4,
        atol: float = 0.01,
        patience: int = 3,
        snapshots: int = 100,
        min_steps: int = 0,
        average: bool = False,
    ):
        if window != "epoch" and (
            isinstance(window, bool) or not isinstance(window, numbers.Integral) or window < 2
        ):
            raise ValueError(f"window must be 'epoch' or a number of steps ≥ 2, got {window!r}.")
        if on not in ("elbo", "parameters"):
            raise ValueError(f"on must be 'elbo' or 'parameters', got {on!r}.")
        for name, value in (("patience", patience), ("snapshots", snapshots)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if snapshots < 8 and on == "parameters":
            raise ValueError(
                f"snapshots must be at least 8 to compare two halves, got {snapshots}."
            )
        self.window: int | str = window
        self.on = on
        self.z, self.rtol, self.atol = float(z), float(rtol), float(atol)
        self.patience, self.snapshots, self.min_steps = int(patience), int(snapshots), min_steps
        self.average = bool(average)
        self.reset()

    def reset(self) -> None:
        """Forget everything seen: start over for a new fit."""
        self.history: list[WindowSummary] = []
        self.converged = False
        self.stopped_at: int | None = None
        self._steps = 0
        self._losses: list[float] = []
        self._params: list[np.ndarray] = []
        self._seen = 0  # losses of the current pm.fit history already taken
        self._streak = 0
        self._best: tuple[float, float] | None = None
        self._previous: tuple[np.ndarray, np.ndarray] | None = None
        self.averaged: np.ndarray | None = None

    # --- resolution -----------------------------------------------------------------------
    def bind(self, model: Model) -> int:
        """Resolve ``window="epoch"`` for ``model``; returns the window in steps."""
        if self.window == "epoch":
            self.window = steps_per_epoch(model)
        return int(self.window)

    @property
    def records_parameters(self) -> bool:
        """Whether the rule needs the parameters: to watch them, or to average them."""
        return self.on == "parameters" or self.average

    @property
    def works_on_blocks(self) -> bool:
        """Whether ``pm.fit`` may run this rule on blocks of steps (``steps_per_call`` > 1).

        Within a block of many steps per compiled call, a callback sees each step's loss but
        the parameters after the whole block. Watching the ELBO or the parameters compares
        windows far longer than a block, which that does not change; averaging the parameters
        (``average=True``) needs them after every step, so ``pm.fit`` then runs one step per
        call (and refuses an explicit ``steps_per_call`` > 1).
        """
        return not self.average

    @property
    def thin(self) -> int:
        """Steps between two recorded parameter values."""
        return max(1, int(self.window) // self.snapshots)

    # --- feeding --------------------------------------------------------------------------
    def __call__(self, approx, losses, i) -> None:
        """The ``pm.fit`` callback: read the new loss (and parameters); stop when converged."""
        if self.window == "epoch":
            self.bind(approx.model)
        if losses is None and self.on == "elbo":
            raise ValueError(
                "This fit computes no loss (e.g. SVGD), so the ELBO cannot be watched; use "
                "EarlyStopping(on='parameters')."
            )
        if losses is not None and len(losses) < self._seen:
            self._seen = 0  # a new fit (or refine) started its own history
        new = [] if losses is None else losses[self._seen :]
        self._seen = 0 if losses is None else len(losses)
        params = approx.params if self.records_parameters else None
        if self.update(new if losses is not None else [np.nan], params=params):
            if self.average and self.averaged is not None:
                _assign(approx.params, self.averaged)
            raise StopIteration(self.message())

    def update(self, losses, params=None) -> bool:
        """Take new per-step losses and the current parameters; True once converged.

        Parameters
        ----------
        losses : array-like
            The losses of the steps since the last call, in order.
        params : dict, list of shared variables, or array, optional
            The variational parameters after the last of those steps (``on="parameters"``).
        """
        if self.window == "epoch":
            raise ValueError(
                "window='epoch' must first be resolved for the model: call bind(model), or "
                "give window=<steps>."
            )
        window = int(self.window)
        for loss in np.atleast_1d(np.asarray(losses, dtype=np.float64)):
            self._steps += 1
            self._losses.append(float(loss))
            if params is not None and self._steps % self.thin == 0:
                self._params.append(_flatten(params))
            if len(self._losses) == window:
                self._close_window()
                if self.converged:
                    return True
        return self.converged

    # --- deciding -------------------------------------------------------------------------
    def _close_window(self) -> None:
        losses = np.asarray(self._losses)
        finite = losses[np.isfinite(losses)]
        mean = float(finite.mean()) if finite.size else np.nan
        se = _mean_se(finite)
        improvement = improvement_se = drift = np.nan
        improved = self._best is None
        if self.on == "elbo" and self._best is not None:
            best, best_se = self._best
            improvement, improvement_se = best - mean, math.hypot(se, best_se)
            improved = improvement > self.z * improvement_se and improvement > self.rtol * abs(mean)
        if self.on == "elbo" and improved:
            self._best = (mean, se)
        if self.on == "parameters":
            drift = self._drift()
            improved = not drift <= 1
        quiet = not improved and self._steps >= self.min_steps
        self._streak = self._streak + 1 if quiet else 0
        self.history.append(
            WindowSummary(self._steps, mean, se, improvement, improvement_se, drift, quiet)
        )
        if self._params:
            self.averaged = np.mean(self._params, axis=0)
        self._losses, self._params = [], []
        if self._streak >= self.patience:
            self.converged, self.stopped_at = True, self._steps

    def _drift(self) -> float:
        """The largest move of a parameter's window mean since the previous window.

        In units of what counts as none: ``atol``, or the noise of the two means if larger.

        Each window mean's standard error comes from the iterates' jitter around their trend
        over the window and its effective sample size, so autocorrelated jitter counts as
        noise and a drift does not; ``z`` is raised to a
        Bonferroni bound over the parameters, so that many parameters do not make a move by
        chance certain.
        """
        values = np.asarray(self._params)
        if len(values) < 4:
            return np.nan
        means = values.mean(axis=0)
        se = np.zeros_like(means)
        moving = np.ptp(values, axis=0) > 0
        if moving.any():
            # The noise around each parameter's trend over the window, not the trend itself.
            steps = np.arange(len(values))
            trend = np.polynomial.polynomial.polyfit(steps, values[:, moving], 1)
            residuals = values[:, moving] - np.polynomial.polynomial.polyval(steps, trend).T
            se[moving] = array_stats.mcse(residuals.T[:, None], method="mean")
        previous, self._previous = self._previous, (means, se)
        if previous is None or previous[0].shape != means.shape:
            return np.nan
        z = norm.isf(norm.sf(self.z) / len(means))
        allowed = np.maximum(self.atol, z * np.hypot(se, previous[1]))
        return float(np.max(np.abs(means - previous[0]) / allowed))

    def message(self) -> str:
        """Why the rule stopped (or what it saw last)."""
        if not self.history:
            return "No window of steps completed yet."
        last = self.history[-1]
        status = f"Convergence at step {self.stopped_at}" if self.converged else "Not converged"
        if self.on == "elbo":
            detail = (
                f"the mean loss over windows of {self.window} steps has not improved on its best "
                f"by more than {self.z:g} standard errors for {self._streak} window(s) (last: "
                f"{last.improvement:,.4g} ± {last.improvement_se:,.3g})"
            )
        else:
            detail = (
                f"no parameter's mean over a window of {self.window} steps has moved from the "
                f"previous window's by more than atol={self.atol:g} or its noise for "
                f"{self._streak} window(s) (last: {last.drift:.3g} of that)"
            )
        return f"{status}: {detail}."


def _assign(shared_params, flat: np.ndarray) -> None:
    """Write a raveled vector back into shared variables, in order."""
    start = 0
    for shared in shared_params:
        value = shared.get_value()
        size = np.size(value)
        shared.set_value(flat[start : start + size].reshape(np.shape(value)).astype(value.dtype))
        start += size


def _unravel(params: dict, flat: np.ndarray) -> dict:
    """A raveled vector as a dict shaped like ``params``, in its order."""
    out, start = {}, 0
    for name, value in params.items():
        size = np.size(value)
        out[name] = (
            flat[start : start + size].reshape(np.shape(value)).astype(np.asarray(value).dtype)
        )
        start += size
    return out


def fit_until_converged(
    trainer,
    rule: EarlyStopping,
    *,
    max_steps: int,
    model: Model | None = None,
    check_every: int | None = None,
    random_seed=None,
    **fit_kwargs,
):
    """Fit pymc-extras' ``Trainer`` until ``rule`` says it has converged, or ``max_steps``.

    ``Trainer.fit(n)`` has no callbacks; it continues from where it stopped, so the trainer is
    fitted ``check_every`` steps at a time (a streaming model's data continues too) and the rule
    reads the new losses and parameters between calls. The trainer's state is its own: the
    same as one ``fit`` of as many steps would leave, for the same seed.

    Parameters
    ----------
    trainer : Trainer
        A pymc-extras ``Trainer`` (new, or fitted before: it continues).
    rule : EarlyStopping
        The stopping rule; ``window="epoch"`` is resolved for ``model``.
    max_steps : int
        Steps at most, over all calls.
    model : Model, optional
        The model to fit; taken from the context if omitted.
    check_every : int, optional
        Steps per ``fit`` call: the rule's parameter spacing with ``on="parameters"``, else a
        window. Each call shows the trainer's progress bar.
    random_seed : optional
        Seeds the first call (later calls continue its random stream).
    **fit_kwargs
        Passed to every ``Trainer.fit`` call.

    Returns
    -------
    SVIState
        The trainer's final state (with ``rule.average``, its parameters averaged over the last
        window, which ``trainer.sample_posterior`` then draws from); ``rule.converged`` and
        ``rule.history`` say why it stopped.

    Examples
    --------
    .. code-block:: python

        from pymc_extras.inference.advi import Trainer

        trainer = Trainer(random_seed=1)
        rule = pmx.streaming.EarlyStopping(window="epoch")
        state = pmx.streaming.fit_until_converged(trainer, rule, max_steps=50_000, model=model)
        idata = trainer.sample_posterior(1_000, model=model)
    """
    from pymc.model import modelcontext

    model = modelcontext(model)
    window = rule.bind(model)
    if check_every is None:
        check_every = rule.thin if rule.records_parameters else window
    state = None
    done = 0
    seed = random_seed
    while done < max_steps:
        steps = min(check_every, max_steps - done)
        before = trainer.step
        state = trainer.fit(steps, model=model, random_seed=seed, **fit_kwargs)
        seed = None
        taken = trainer.step - before
        done += taken
        losses = np.asarray(state.loss_history[len(state.loss_history) - taken :])
        params = state.params if rule.records_parameters else None
        if taken == 0 or rule.update(losses, params=params):
            break
    if state is not None and rule.converged and rule.average and rule.averaged is not None:
        # The trainer samples from its state: give it the averaged parameters. A later fit
        # continues from where the optimiser was.
        state = dataclasses.replace(state, params=_unravel(state.params, rule.averaged))
        trainer.state = state
    return state
