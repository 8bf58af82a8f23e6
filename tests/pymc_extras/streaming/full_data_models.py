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
"""Regression models, their data, and a chunked source: shared by the full-data pass tests."""

import functools
import itertools

from dataclasses import dataclass

import numpy as np
import pymc as pm


class Chunked:
    """A re-iterable over aligned arrays, cut into chunks wherever the test says."""

    def __init__(self, *arrays):
        self.arrays = arrays
        self.num_rows = len(arrays[0])
        self.cuts: list[int] = []
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        bounds = [0, *sorted(self.cuts), self.num_rows]
        for start, stop in itertools.pairwise(bounds):
            yield tuple(array[start:stop] for array in self.arrays)


@dataclass(frozen=True)
class Data:
    X: np.ndarray
    y_linear: np.ndarray
    y_logistic: np.ndarray
    group: np.ndarray
    y_grouped: np.ndarray
    groups: int


def simulate(rng, n, *, groups, intercept, group_mean=0.0, group_sd=1.0) -> Data:
    """Three features; linear, logistic and grouped outcomes (drawn from ``rng``, in order)."""
    X = rng.normal(size=(n, 3))
    eta = intercept + X @ [1.0, -0.5, 0.25]
    y_linear = eta + rng.normal(size=n)
    y_logistic = rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(np.int64)
    group = rng.integers(groups, size=n)
    y_grouped = group_mean + group_sd * rng.normal(size=groups)[group] + rng.normal(size=n)
    return Data(X, y_linear, y_logistic, group, y_grouped, groups)


def linear(X_data, y_data, **observed):
    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 2, shape=3)
        intercept = pm.Normal("intercept", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X_data @ beta, sigma, observed=y_data, **observed)
    return model


def logistic(X_data, y_data, **observed):
    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 2, shape=3)
        intercept = pm.Normal("intercept", 0, 2)
        pm.Bernoulli("y", logit_p=intercept + X_data @ beta, observed=y_data, **observed)
    return model


def hierarchical(g_data, y_data, *, groups, **observed):
    """Random intercepts for ``groups`` groups, non-centred."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 2)
        tau = pm.HalfNormal("tau", 1)
        z = pm.Normal("z", 0, 1, shape=groups)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", (mu + tau * z)[g_data], sigma, observed=y_data, **observed)
    return model


def families(data: Data) -> dict:
    """Each model family with the arrays it observes: ``{name: (build, arrays)}``."""
    return {
        "linear": (linear, (data.X, data.y_linear)),
        "logistic": (logistic, (data.X, data.y_logistic)),
        "hierarchical": (
            functools.partial(hierarchical, groups=data.groups),
            (data.group, data.y_grouped),
        ),
    }


def radon_like(rng, *, n=919, counties=85):
    """Data shaped like PyMC's radon example: county index, floor (0/1), log radon."""
    county = rng.integers(counties, size=n)
    floor = rng.binomial(1, 0.2, size=n).astype(np.float64)
    alpha = 1.5 + 0.3 * rng.normal(size=counties)
    log_radon = alpha[county] - 0.7 * floor + 0.75 * rng.normal(size=n)
    return county, floor, log_radon


def radon(county, floor, log_radon, *, counties=85, as_data=False):
    """PyMC's radon example (varying intercepts, one slope); ``as_data`` wraps the covariates in
    pm.Data, which converts float data to floatX as a stream does."""
    with pm.Model() as model:
        if as_data:
            county = pm.Data("county", county)
            floor = pm.Data("floor", floor)
        mu_alpha = pm.Normal("mu_alpha", 0, 10)
        sigma_alpha = pm.HalfNormal("sigma_alpha", 5)
        alpha = pm.Normal("alpha", mu_alpha, sigma_alpha, shape=counties)
        beta = pm.Normal("beta", 0, 10)
        eps = pm.HalfCauchy("eps", 5)
        pm.Normal("log_radon", alpha[county] + beta * floor, eps, observed=log_radon)
    return model
