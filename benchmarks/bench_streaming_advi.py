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
"""ADVI steps per second: streaming minibatches vs in-memory ``pm.Minibatch`` vs pymc-extras.

Run ``.venv/bin/python benchmarks/bench_streaming_advi.py`` (about 2 minutes on a 2-core
machine; ``--quick`` for a smoke run: 5-25 seconds, nearly all of it compilation, less once
PyTensor's compilation cache is warm).
It prints one JSON object on stdout; logs and progress bars go to stderr or nowhere.

Every variant fits the same Bayesian linear regression (``_N_FEATURES`` Gaussian features,
intercept, half-normal noise scale) on the same simulated ``_N_ROWS`` rows, ``_BATCH_SIZE`` rows
per step, with the likelihood scaled to the full data set:

``streaming_prefetch16``, ``streaming_prefetch0``
    ``pm.Minibatch(X, y, batch_size=..., streaming=True, prefetch=k)`` over the numpy arrays,
    then ``pm.fit(method="advi")``, which refreshes the batch buffers before every step (from a
    background thread ``k`` batches ahead, or synchronously in the main thread for ``k = 0``).
``inmemory``
    Upstream ``pm.Minibatch(X, y, batch_size=...)``: random rows indexed inside the graph.
``fixed_batch``
    The streaming model without the stream: the observed data is a ``pm.Data`` holding one batch,
    with the buffers' static shape and ``total_size`` given, so ``pm.fit`` runs the same graph
    and loop with no refresh.
``compiled_step``
    The streaming model's compiled step function (``ADVI().objective.step_function``, which
    only ``pm.fit`` wraps in the refresh) called in a bare Python loop: the step alone, without
    refresh or ``pm.fit``'s per-step bookkeeping (its NaN check, progress and callbacks).
``extras_trainer``
    pymc-extras' ``DataLoader`` (shuffled, its default buffer) feeding ``Trainer.fit(n, data)``
    as its docstrings show: one ``pm.Data("batch")`` holding features and outcome side by side,
    ``total_size=loader.total_size`` on the likelihood, and an endless generator of
    ``{"batch": array}`` dicts (one ``DataLoader`` pass is a single epoch, and ``Trainer.fit``
    stops silently when its data runs out).
``extras_trainer_fixed``
    The same ``Trainer`` model fed empty dicts: its step and loop with no data refresh.

Method. Compilation is excluded by timing only the loop: a step clock records
``time.perf_counter()`` when ``warmup`` steps are complete and again ``steps`` steps later, and
steps per second is ``steps`` over that interval. For ``pm.fit`` the clock is a callback (called
after every step); for ``Trainer``, which takes no callbacks, it is the data generator, which
``Trainer.fit`` asks for batch ``k`` right after step ``k - 1``. So every interval covers the same
work per step: the refresh, the step, and the loop's own bookkeeping. The warm-up steps cover
just-in-time compilation, the start of the prefetch thread and the first buffer fills; when they
are done the clock runs a full garbage collection before it starts, since the objects the
compilations left behind otherwise make a random window pay a collection of a few hundred
milliseconds (the per-step collections of what the loops allocate stay in the window).

Each repetition runs every variant once, in an order rotated by one per repetition, so drift
on a noisy machine spreads over all of them. ``pm.fit`` recompiles on every call, as it does for
users; each ``Trainer`` and ``compiled_step`` compiles once and later repetitions continue its
fit. Figures are medians over repetitions; a ratio or overhead is the median of the
per-repetition values, each computed from two variants timed next to each other. Refresh overhead is the time per step with the
stream minus that of ``fixed_batch``, in microseconds and as a fraction of ``fixed_batch``'s step
(likewise the in-graph gather of ``inmemory``, pymc-extras' loader against its own fixed run, and
``pm.fit``'s loop against ``compiled_step``).

Sanity checks, from the last repetition: ``b_max_abs_error``, the largest error of the posterior
mean of the coefficients, and ``final_loss``, the median loss of the last tenth of the timed steps
(``pm.fit`` reports the loss per batch, ``Trainer`` per data set). Variants on one batch
(``fixed_batch``, ``compiled_step``, ``extras_trainer_fixed``) fit that batch only.
"""

import argparse
import contextlib
import os
import statistics
import time

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from benchlib import StepClock, machine, print_result
from pytensor.compile.mode import get_default_mode

import pymc as pm

from pymc_extras.inference.advi import Trainer
from pymc_extras.variational import DataLoader

__all__ = ["main", "run"]

_N_ROWS = 100_000
_N_FEATURES = 10
_BATCH_SIZE = 256
_STEPS = 5_000
_WARMUP = 500
_REPEATS = 7
_PREFETCH = 16
_DATA_SEED = 0
_FIT_SEED = 1

_QUICK = {"n_rows": 5_000, "steps": 200, "warmup": 20, "repeats": 1}


@dataclass
class _Data:
    X: np.ndarray
    y: np.ndarray
    beta: np.ndarray


def _simulate(n_rows: int) -> _Data:
    rng = np.random.default_rng(_DATA_SEED)
    X = rng.normal(size=(n_rows, _N_FEATURES))
    beta = rng.normal(size=_N_FEATURES)
    y = 0.5 + X @ beta + rng.normal(size=n_rows)
    return _Data(X=X, y=y, beta=beta)


def _regression(X, y, total_size: int | None) -> None:
    """Add the regression's priors and likelihood to the model in context."""
    intercept = pm.Normal("intercept", 0.0, 1.0)
    b = pm.Normal("b", 0.0, 1.0, shape=_N_FEATURES)
    sigma = pm.HalfNormal("sigma", 1.0)
    pm.Normal("obs", intercept + X @ b, sigma, observed=y, total_size=total_size)


def _streaming_model(data: _Data, prefetch: int) -> pm.Model:
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(
            data.X,
            data.y,
            batch_size=_BATCH_SIZE,
            streaming=True,
            prefetch=prefetch,
            random_seed=_DATA_SEED,
        )
        _regression(X_mb, y_mb, total_size=None)  # inferred from the stream
    return model


def _inmemory_model(data: _Data) -> pm.Model:
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(data.X, data.y, batch_size=_BATCH_SIZE)
        _regression(X_mb, y_mb, total_size=len(data.y))
    return model


def _fixed_model(data: _Data) -> pm.Model:
    with pm.Model() as model:
        # static shapes, as the stream's buffers have: the same graph, compiled the same way
        X_b = pm.Data("X_batch", data.X[:_BATCH_SIZE], shape=(_BATCH_SIZE, _N_FEATURES))
        y_b = pm.Data("y_batch", data.y[:_BATCH_SIZE], shape=(_BATCH_SIZE,))
        _regression(X_b, y_b, total_size=len(data.y))
    return model


def _loader_model(first_batch: np.ndarray, total_size: int) -> pm.Model:
    with pm.Model() as model:
        batch = pm.Data("batch", first_batch)
        _regression(batch[:, :_N_FEATURES], batch[:, _N_FEATURES], total_size=total_size)
    return model


def _b_mean(approx) -> np.ndarray:
    """Posterior mean of ``b`` from a ``pm.fit`` approximation."""
    _, slc, _, _ = approx.groups[0].ordering["b"]
    return approx.mean.eval()[slc]


@dataclass
class _Variant:
    """One way of fitting; ``run(clock)`` fits once, returns the mean of ``b`` and the losses."""

    name: str
    description: str
    run: Callable[[StepClock], tuple[np.ndarray, np.ndarray]]
    steps_per_s: list[float] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    b_mean: np.ndarray | None = None
    final_loss: float | None = None


def _pm_fit_variant(name: str, description: str, model: pm.Model, n_total: int) -> _Variant:
    def run(clock: StepClock) -> tuple[np.ndarray, np.ndarray]:
        with model:
            approx = pm.fit(
                n_total,
                method="advi",
                random_seed=_FIT_SEED,
                progressbar=False,
                callbacks=[clock.callback],
            )
        return _b_mean(approx), approx.hist

    return _Variant(name, description, run)


def _compiled_step_variant(model: pm.Model, n_total: int) -> _Variant:
    inference = pm.ADVI(model=model, random_seed=_FIT_SEED)
    # the bare compiled function: only pm.fit wraps it in the stream refresh
    step = inference.objective.step_function(score=True)

    def run(clock: StepClock) -> tuple[np.ndarray, np.ndarray]:
        losses = np.empty(n_total)
        for i in range(n_total):
            losses[i] = step()
            clock.tick(i + 1)
        return _b_mean(inference.approx), losses

    return _Variant(
        "compiled_step",
        "the streaming model's compiled ADVI step in a bare loop (no pm.fit, buffers never "
        "refreshed)",
        run,
    )


def _trainer_variant(
    name: str, description: str, model: pm.Model, batches: Callable[[], Iterator[dict]], n: int
) -> _Variant:
    trainer = Trainer(random_seed=_FIT_SEED)

    def clocked(clock: StepClock) -> Iterator[dict]:
        # Trainer.fit takes batch 0 before compiling, then batch k right after step k - 1.
        for done, batch in enumerate(batches()):
            clock.tick(done)
            yield batch

    def run(clock: StepClock) -> tuple[np.ndarray, np.ndarray]:
        # Trainer's progress bar cannot be switched off and writes to stdout, ours is JSON.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), model:
            # one more step than the window, so that the batch closing it is asked for
            state = trainer.fit(n + 1, data=clocked(clock), random_seed=_FIT_SEED)
        return state.params["b_loc"], state.loss_history

    return _Variant(name, description, run)


def _endless(loader: DataLoader) -> Iterator[dict]:
    """The loader's epochs one after another, as ``Trainer.fit`` data dicts."""
    while True:
        for batch in loader:
            yield {"batch": batch}


def _variants(data: _Data, n_total: int) -> list[_Variant]:
    n_rows = len(data.y)
    streaming0 = _streaming_model(data, prefetch=0)
    table = np.column_stack([data.X, data.y])
    first_batch = table[:_BATCH_SIZE]
    loader = DataLoader(
        table,
        batch_size=_BATCH_SIZE,
        shuffle=True,
        seed=_DATA_SEED,
        total_size=n_rows,
    )
    return [
        _pm_fit_variant(
            f"streaming_prefetch{_PREFETCH}",
            f"pm.Minibatch(X, y, streaming=True, prefetch={_PREFETCH}) + pm.fit",
            _streaming_model(data, prefetch=_PREFETCH),
            n_total,
        ),
        _pm_fit_variant(
            "streaming_prefetch0",
            "pm.Minibatch(X, y, streaming=True, prefetch=0) + pm.fit",
            streaming0,
            n_total,
        ),
        _pm_fit_variant(
            "inmemory", "upstream pm.Minibatch(X, y) + pm.fit", _inmemory_model(data), n_total
        ),
        _pm_fit_variant(
            "fixed_batch",
            "pm.Data of one batch with total_size + pm.fit (the streaming graph, no refresh)",
            _fixed_model(data),
            n_total,
        ),
        _compiled_step_variant(streaming0, n_total),
        _trainer_variant(
            "extras_trainer",
            "pymc-extras DataLoader(shuffle=True) + Trainer.fit(n, data)",
            _loader_model(first_batch, loader.total_size),
            lambda: _endless(loader),
            n_total,
        ),
        _trainer_variant(
            "extras_trainer_fixed",
            "the extras_trainer model fed empty dicts: Trainer step and loop, no data",
            _loader_model(first_batch, loader.total_size),
            lambda: iter(dict, None),  # endless empty batches
            n_total,
        ),
    ]


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _paired(a: _Variant, b: _Variant, op: Callable[[float, float], float]) -> float:
    return _median([op(x, y) for x, y in zip(a.steps_per_s, b.steps_per_s, strict=True)])


def _ratio(a: _Variant, b: _Variant) -> float:
    """Median over repetitions of the steps/s of ``a`` over that of ``b``."""
    return round(_paired(a, b, lambda x, y: x / y), 3)


def _overhead(with_refresh: _Variant, without: _Variant) -> dict[str, float]:
    """Time per step added by the data refresh, from per-repetition differences."""
    extra_s = _paired(with_refresh, without, lambda x, y: 1 / x - 1 / y)
    base_s = _median([1 / x for x in without.steps_per_s])
    return {
        "us_per_step": round(extra_s * 1e6, 2),
        "fraction_of_step": round(extra_s / base_s, 3),
        "baseline_step_us": round(base_s * 1e6, 2),
    }


def run(
    *, n_rows: int = _N_ROWS, steps: int = _STEPS, warmup: int = _WARMUP, repeats: int = _REPEATS
) -> dict:
    """Run the benchmark and return its figures and parameters.

    Parameters
    ----------
    n_rows : int, default 100_000
        Rows in the simulated data set.
    steps : int, default 5_000
        Timed steps per fit.
    warmup : int, default 500
        Steps run before the timed window opens, per fit.
    repeats : int, default 7
        Repetitions of every variant, interleaved.

    Returns
    -------
    dict
        JSON-serializable figures and parameters.
    """
    wall_start = time.perf_counter()
    data = _simulate(n_rows)
    n_total = warmup + steps
    variants = _variants(data, n_total)
    by_name = {v.name: v for v in variants}

    for rep in range(repeats):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]
        for variant in order:
            clock = StepClock(warmup=warmup, steps=steps)
            t0 = time.perf_counter()
            b_mean, losses = variant.run(clock)
            variant.b_mean = np.asarray(b_mean)
            variant.final_loss = float(np.median(np.asarray(losses)[-steps // 10 :]))
            variant.call_s.append(time.perf_counter() - t0)
            variant.steps_per_s.append(steps / clock.seconds())

    figures = {
        v.name: {
            "description": v.description,
            "steps_per_s": round(_median(v.steps_per_s), 1),
            "step_us": round(1e6 / _median(v.steps_per_s), 2),
            "steps_per_s_all": [round(x, 1) for x in v.steps_per_s],
            "call_s_median": round(_median(v.call_s), 3),
            "b_max_abs_error": round(float(np.max(np.abs(v.b_mean - data.beta))), 4),
            "final_loss": round(v.final_loss, 1),
        }
        for v in variants
    }
    stream4, stream0 = by_name[f"streaming_prefetch{_PREFETCH}"], by_name["streaming_prefetch0"]
    inmemory, fixed = by_name["inmemory"], by_name["fixed_batch"]
    trainer, trainer_fixed = by_name["extras_trainer"], by_name["extras_trainer_fixed"]
    return {
        "benchmark": "streaming_advi",
        "units": "steps_per_s: median steps/s of the timed window; step_us = 1e6 / steps_per_s",
        "variants": figures,
        "ratios_steps_per_s": {
            # The default for numpy arrays in memory is prefetch=0 (see pm.Minibatch's docstring).
            "streaming_default/inmemory": _ratio(stream0, inmemory),
            "streaming_default/extras_trainer": _ratio(stream0, trainer),
            f"streaming_prefetch{_PREFETCH}/inmemory": _ratio(stream4, inmemory),
            "streaming_prefetch0/inmemory": _ratio(stream0, inmemory),
            f"streaming_prefetch{_PREFETCH}/streaming_prefetch0": _ratio(stream4, stream0),
            f"streaming_prefetch{_PREFETCH}/extras_trainer": _ratio(stream4, trainer),
            "inmemory/extras_trainer": _ratio(inmemory, trainer),
            f"streaming_prefetch{_PREFETCH}/fixed_batch": _ratio(stream4, fixed),
            "extras_trainer/extras_trainer_fixed": _ratio(trainer, trainer_fixed),
        },
        "refresh_overhead": {
            f"streaming_prefetch{_PREFETCH}": _overhead(stream4, fixed),
            "streaming_prefetch0": _overhead(stream0, fixed),
            "inmemory_gather": _overhead(inmemory, fixed),
            "extras_trainer_dataloader": _overhead(trainer, trainer_fixed),
            "pm_fit_loop": _overhead(fixed, by_name["compiled_step"]),
        },
        "params": {
            "n_rows": n_rows,
            "n_features": _N_FEATURES,
            "batch_size": _BATCH_SIZE,
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
            "prefetch": _PREFETCH,
            "streaming_shuffle_buffer": "default",
            "dataloader_buffer_size": "default (50 * batch_size)",
            "fit_random_seed": _FIT_SEED,
            "data_seed": _DATA_SEED,
            "pm_fit": "method='advi' (adagrad_window), progressbar=False",
            "trainer": "default guide and optimizer (AutoDiagonalNormal, clipped_adam)",
            "pytensor_linker": type(get_default_mode().linker).__name__,
            **machine(),
        },
        "wall_s": round(time.perf_counter() - wall_start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the benchmark and print its JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--repeats", type=int, help=f"repetitions (default {_REPEATS})")
    parser.add_argument("--steps", type=int, help=f"timed steps per fit (default {_STEPS})")
    args = parser.parse_args(argv)
    options = dict(_QUICK) if args.quick else {}
    if args.repeats is not None:
        options["repeats"] = args.repeats
    if args.steps is not None:
        options["steps"] = args.steps
    print_result(run(**options), quick=args.quick)


if __name__ == "__main__":
    main()
