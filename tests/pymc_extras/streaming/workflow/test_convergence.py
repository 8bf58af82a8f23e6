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
"""The stopping rule stops on a flat noisy objective or stationary parameters, not before."""

import numpy as np
import pymc as pm
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from pymc.variational.blocks import BlockFunction

from pymc_extras.inference.advi import Trainer
from pymc_extras.streaming.workflow.convergence import (
    EarlyStopping,
    fit_until_converged,
    steps_per_epoch,
)
from tests.streaming.workflow_models import simulate, streaming_linear

DATA = simulate(20_000, seed=9)


def noisy_curve(steps, *, rate, seed, scale=1_000.0, noise=20.0):
    """A loss falling exponentially to a floor, with autocorrelated noise."""
    rng = np.random.default_rng(seed)
    noise_path = np.zeros(steps)
    shocks = rng.normal(0, noise, size=steps)
    for i in range(1, steps):
        noise_path[i] = 0.5 * noise_path[i - 1] + shocks[i]
    return 100.0 + scale * np.exp(-rate * np.arange(steps)) + noise_path


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_stops_once_the_loss_is_flat_within_its_noise(seed):
    losses = noisy_curve(20_000, rate=1 / 800, seed=seed)
    rule = EarlyStopping(window=200)
    for start in range(0, len(losses), 37):  # fed in uneven pieces, as any loop may
        if rule.update(losses[start : start + 37]):
            break
    assert rule.converged
    # By then what the loss can still fall is of the size of the noise of a window's mean.
    last = rule.history[-1]
    assert 1_000 * np.exp(-rule.stopped_at / 800) < 4 * last.improvement_se
    assert rule.stopped_at < 12_000
    assert rule.history[-1].converged and len(rule.history) * 200 == rule.stopped_at


def test_a_steadily_falling_loss_never_stops():
    losses = 1_000 - 0.05 * np.arange(30_000) + np.random.default_rng(0).normal(0, 5, 30_000)
    rule = EarlyStopping(window=500)
    assert not rule.update(losses)
    assert not rule.converged
    assert all(np.isfinite(w.improvement) for w in rule.history[1:])


def test_parameters_stationary_or_drifting():
    rng = np.random.default_rng(1)
    jitter = np.zeros((8_000, 4))  # autocorrelated jitter around a fixed optimum
    for i in range(1, len(jitter)):
        jitter[i] = 0.9 * jitter[i - 1] + rng.normal(0, 0.1, size=4)
    rule = EarlyStopping(window=1_000, on="parameters", patience=2)
    for params in jitter:
        if rule.update([0.0], params=params):
            break
    assert rule.converged and rule.stopped_at == 3_000  # the first window has nothing to compare
    assert np.isnan(rule.history[0].drift) and rule.history[-1].drift <= 1
    drifting = EarlyStopping(window=1_000, on="parameters")
    path = jitter + np.linspace(0, 2, len(jitter))[:, None]  # the same jitter, drifting
    for params in path:
        drifting.update([0.0], params={"a": params[:2], "b": params[2:]})
    assert not drifting.converged
    assert min(w.drift for w in drifting.history[1:]) > 1


def test_epoch_window_of_a_streaming_model():
    model = streaming_linear(DATA.X, DATA.y)  # 20,000 rows in batches of 256
    rule = EarlyStopping()
    assert rule.bind(model) == steps_per_epoch(model) == 79 == rule.window


def test_pm_fit_callback_stops_early_near_the_optimum():
    model = streaming_linear(DATA.X, DATA.y)
    rule = EarlyStopping(window=400)
    with model:
        approx = pm.fit(
            100_000,
            callbacks=[rule],
            obj_optimizer=pm.adam(learning_rate=0.01),
            random_seed=1,
            progressbar=False,
        )
    assert rule.converged and rule.stopped_at < 20_000
    # It works on blocks: the stop comes in a block of 256 steps, applied whole, and pm.fit
    # keeps the loss of every step applied.
    assert len(approx.hist) == -(-rule.stopped_at // 256) * 256
    assert "Convergence at step" in rule.message()
    [group] = approx.groups
    beta = approx.mean.eval()[group.ordering["beta"][1]]
    # Near least squares, up to the jitter of Adam's iterates at this learning rate.
    np.testing.assert_allclose(beta, [0.994, -0.497, 0.253], atol=0.05)


def test_trainer_until_converged_continues_one_fit():
    model = streaming_linear(DATA.X, DATA.y)
    rule = EarlyStopping(window=150)
    trainer = Trainer(random_seed=1)
    state = fit_until_converged(trainer, rule, max_steps=6_000, model=model, random_seed=2)
    assert rule.converged
    assert trainer.step == rule.stopped_at == len(state.loss_history)
    # Fitted in windows, the trainer is where one fit of as many steps leaves it.
    model_again = streaming_linear(DATA.X, DATA.y)
    once = Trainer(random_seed=1)
    once.fit(rule.stopped_at, model=model_again, random_seed=2)
    for name, value in once.state.params.items():
        np.testing.assert_allclose(state.params[name], value, rtol=1e-10)


def test_averaging_sets_the_parameters_to_the_last_window_mean():
    model = streaming_linear(DATA.X, DATA.y)
    rule = EarlyStopping(window=200, average=True, snapshots=20)
    with model:
        approx = pm.fit(20_000, callbacks=[rule], random_seed=1, progressbar=False)
    assert rule.converged
    flat = np.concatenate([p.get_value().ravel() for p in approx.params])
    np.testing.assert_allclose(flat, rule.averaged)
    trainer_rule = EarlyStopping(window=150, average=True, snapshots=10)
    trainer = Trainer(random_seed=1)
    state = fit_until_converged(trainer, trainer_rule, max_steps=6_000, model=model)
    assert trainer_rule.converged and trainer.state is state
    flat = np.concatenate([np.ravel(value) for value in state.params.values()])
    np.testing.assert_allclose(flat, trainer_rule.averaged)


def test_averaging_runs_pm_fit_one_step_per_call():
    # Within a block of many steps per call, callbacks see the parameters after the block:
    # an average of those would take one value per block, not per step.
    model = streaming_linear(DATA.X, DATA.y)
    rule = EarlyStopping(window=200, average=True, snapshots=20)
    watcher = EarlyStopping(window=200, on="parameters")
    assert not rule.works_on_blocks and watcher.works_on_blocks
    with model:
        averaged = pm.ADVI(random_seed=1)
        averaged.fit(300, callbacks=[rule], progressbar=False)
        watched = pm.ADVI(random_seed=1)
        watched.fit(300, callbacks=[watcher], progressbar=False)
        # Asked for blocks, averaging would take one value per block: refused, not obeyed.
        with pytest.raises(ValueError, match=r"steps_per_call=64 .*EarlyStopping"):
            pm.fit(128, callbacks=[rule], steps_per_call=64, progressbar=False)
    assert not isinstance(averaged.state.step, BlockFunction)
    assert isinstance(watched.state.step, BlockFunction)


def test_trainer_stops_at_max_steps():
    model = streaming_linear(DATA.X, DATA.y)
    rule = EarlyStopping(window=1_000)
    trainer = Trainer(random_seed=1)
    fit_until_converged(trainer, rule, max_steps=300, model=model)
    assert trainer.step == 300 and not rule.converged
    assert rule.message() == "No window of steps completed yet."


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"window": 1}, "window must be"),
        ({"window": "month"}, "window must be"),
        ({"on": "loss"}, "on must be"),
        ({"patience": 0}, "patience must be"),
        ({"on": "parameters", "snapshots": 4}, "at least 8"),
    ],
    ids=["window-1", "window-name", "on", "patience", "snapshots"],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_epoch_windows_need_a_model():
    with pytest.raises(ValueError, match=r"bind\(model\)"):
        EarlyStopping().update([1.0])
    with pm.Model() as in_memory:
        pm.Normal("x", observed=np.zeros(3))
    with pytest.raises(ValueError, match="window='epoch' needs"):
        EarlyStopping().bind(in_memory)


def test_fits_without_a_loss_need_the_parameters_rule():
    model = streaming_linear(DATA.X, DATA.y)
    with model, pytest.raises(ValueError, match="on='parameters'"):
        pm.fit(
            10,
            method="svgd",
            inf_kwargs={"n_particles": 5},
            callbacks=[EarlyStopping(window=5)],
            progressbar=False,
        )
