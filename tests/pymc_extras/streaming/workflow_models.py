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
"""A regression streamed and in memory, and posterior draws for it: shared by workflow tests."""

from dataclasses import dataclass

import arviz as az
import numpy as np
import pymc as pm

COORDS = {"feature": ["x1", "x2", "x3"]}
TRUE_BETA = np.array([1.0, -0.5, 0.25])


@dataclass(frozen=True)
class Regression:
    X: np.ndarray
    y: np.ndarray


def simulate(n: int, seed: int = 0) -> Regression:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = 0.3 + X @ TRUE_BETA + rng.normal(size=n)
    return Regression(X, y)


def streaming_linear(X_source, y_source=None, *, deterministic=False, **minibatch):
    """The regression on streaming minibatches of ``(X, y)`` (one source, or two)."""
    sources = (X_source,) if y_source is None else (X_source, y_source)
    with pm.Model(coords=COORDS) as model:
        X_mb, y_mb = pm.Minibatch(*sources, batch_size=256, streaming=True, **minibatch)
        beta = pm.Normal("beta", 0, 2, dims="feature")
        intercept = pm.Normal("intercept", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        mu = intercept + X_mb @ beta
        if deterministic:
            mu = pm.Deterministic("mu", mu)
        pm.Normal("y", mu, sigma, observed=y_mb)
    return model


def memory_linear(X, y, *, deterministic=False):
    """The same regression on ``pm.Data``, as a PyMC user writes it in memory."""
    with pm.Model(coords=COORDS) as model:
        X_data = pm.Data("X", X)
        y_data = pm.Data("y_obs", y)
        beta = pm.Normal("beta", 0, 2, dims="feature")
        intercept = pm.Normal("intercept", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        mu = intercept + X_data @ beta
        if deterministic:
            mu = pm.Deterministic("mu", mu)
        pm.Normal("y", mu, sigma, observed=y_data, shape=X_data.shape[0])
    return model


def posterior(data: Regression, *, draws: int = 400, chains: int = 2, seed: int = 1):
    """Draws from (nearly) the exact posterior: the least-squares fit and its uncertainty."""
    rng = np.random.default_rng(seed)
    design = np.column_stack([np.ones(len(data.y)), data.X])
    coef, *_ = np.linalg.lstsq(design, data.y, rcond=None)
    resid = data.y - design @ coef
    sigma = resid.std(ddof=design.shape[1])
    cov = sigma**2 * np.linalg.inv(design.T @ design)
    samples = rng.multivariate_normal(coef, cov, size=(chains, draws))
    sigmas = sigma * np.exp(rng.normal(0, 1 / np.sqrt(2 * len(data.y)), size=(chains, draws)))
    return az.from_dict(
        {
            "posterior": {
                "intercept": samples[..., 0],
                "beta": samples[..., 1:],
                "sigma": sigmas,
            }
        },
        dims={"beta": ["feature"]},
        coords=COORDS,
    )
