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
"""Log densities of the posterior and of its approximation at approximate-posterior draws."""

from collections.abc import Mapping

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from pymc.blocking import DictToArrayBijection
from pymc.model import Model, modelcontext
from pymc.pytensorf import compile
from pytensor.graph.replace import vectorize_graph
from scipy.linalg import solve_triangular
from xarray import DataTree

from pymc_extras.streaming.passes.full_data import DEFAULT_CHUNK_SIZE, FullDataLogp
from pymc_extras.streaming.workflow.pointwise import Draws

__all__ = ["log_densities"]


def unconstrained_draws(idata: DataTree, model: Model | None = None) -> dict[str, np.ndarray]:
    """The posterior draws on the unconstrained scale: each value variable, (draws, *shape).

    Each free variable's draws go through its transform's ``forward`` (``log`` for a positive
    variable, ...), vectorised over the draws in one compiled call.
    """
    model = modelcontext(model)
    draws = Draws.from_posterior(idata, model)
    free = list(model.free_RVs)
    batched = [
        pt.tensor(f"{rv.name}_draws", dtype=rv.dtype, shape=(None,) * (rv.ndim + 1)) for rv in free
    ]
    forward = []
    for rv in free:
        transform = model.rvs_to_transforms[rv]
        forward.append(rv if transform is None else transform.forward(rv, *rv.owner.inputs))
    outputs = vectorize_graph(forward, replace=dict(zip(free, batched)))
    fn = compile(batched, outputs, on_unused_input="ignore")
    values = fn(*draws.ordered([rv.name for rv in free]))
    return {model.rvs_to_values[rv].name: value for rv, value in zip(free, values)}


def _raveled(values: Mapping[str, np.ndarray], names) -> np.ndarray:
    """(draws, n): each draw's values, raveled in the order of ``names``."""
    size = len(next(iter(values.values())))
    return np.concatenate([values[name].reshape(size, -1) for name in names], axis=1)


def _normal_logpdf(points: np.ndarray, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Multivariate normal log density with the Cholesky factor ``chol`` of its covariance."""
    centred = solve_triangular(chol, (points - mean).T, lower=True)
    log_det = np.log(np.abs(np.diagonal(chol))).sum()
    n = len(mean)
    return -0.5 * (centred**2).sum(axis=0) - log_det - 0.5 * n * np.log(2 * np.pi)


def _pymc_log_q(approximation, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Log q of a ``pm.fit`` approximation (mean-field or full-rank ADVI)."""
    from pymc.variational.approximations import FullRankGroup, MeanFieldGroup

    groups = approximation.groups
    if len(groups) != 1 or not isinstance(groups[0], MeanFieldGroup | FullRankGroup):
        kinds = ", ".join(type(group).__name__ for group in groups)
        raise TypeError(
            f"log q needs a Gaussian approximation over every variable (ADVI or FullRankADVI); "
            f"got groups {kinds}. Particle approximations (SVGD, Empirical) have no density."
        )
    [group] = groups
    points = _raveled(values, list(group.ordering))
    mean = np.asarray(group.mean.eval(), dtype=np.float64)
    if isinstance(group, MeanFieldGroup):
        chol = np.diag(np.asarray(group.std.eval(), dtype=np.float64))
    else:
        chol = np.asarray(group.L.eval(), dtype=np.float64)
    return _normal_logpdf(points, mean, chol)


def _guide_log_q(guide, params: Mapping[str, np.ndarray], model: Model, values) -> np.ndarray:
    """Log q of a pymc-extras guide (``Trainer``) at its parameters ``params``."""
    from pymc_extras.inference.advi.autoguide import AutoFullRankGuideModel, AutoLowRankGuideModel

    names = [model.rvs_to_values[rv].name for rv in model.free_RVs]
    if isinstance(guide, AutoFullRankGuideModel | AutoLowRankGuideModel):
        order = list(DictToArrayBijection.map(model.initial_point()).point_map_info)
        points = _raveled(values, [name for name, *_ in order])
        mean = np.asarray(params["loc"], dtype=np.float64)
        if isinstance(guide, AutoFullRankGuideModel):
            n = len(mean)
            chol = np.zeros((n, n))
            chol[np.tril_indices(n)] = params["L_packed"]
            chol[np.diag_indices(n)] = np.exp(np.diagonal(chol))
        else:
            factor = np.asarray(params["cov_factor"], dtype=np.float64)
            diagonal = np.exp(np.asarray(params["cov_diag_unconstrained"], dtype=np.float64))
            chol = np.linalg.cholesky(factor @ factor.T + np.diag(diagonal**2))
        return _normal_logpdf(points, mean, chol)
    missing = [f"{rv.name}_loc" for rv in model.free_RVs if f"{rv.name}_loc" not in params]
    if missing:
        raise TypeError(
            f"The trainer's guide ({type(guide).__name__}) is not one of pymc-extras' Gaussian "
            "guides (AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal), "
            "whose density is known; pass log_q yourself."
        )
    points = _raveled(values, names)
    mean = np.concatenate([np.ravel(params[f"{rv.name}_loc"]) for rv in model.free_RVs])
    scale = np.concatenate([np.exp(np.ravel(params[f"{rv.name}_scale"])) for rv in model.free_RVs])
    return _normal_logpdf(points, mean, np.diag(scale))


def log_densities(
    idata: DataTree,
    approximation,
    model: Model | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> xr.Dataset:
    """The posterior's and the approximation's log densities at each approximate-posterior draw.

    PSIS-LOO of draws from an approximation ``q`` of the posterior ``p`` reweights them by
    ``p / q`` (Magnusson et al. 2019, 2020): ``arviz_stats.loo_approximate_posterior`` and
    ``arviz_stats.loo_subsample`` (and :func:`pymc_extras.streaming.workflow.loo.loo_subsample`) take
    ``log_p`` and ``log_q`` for it. Both are on the unconstrained scale, where ADVI's ``q`` is
    Gaussian: ``log_p`` is the exact full-data log density with the transforms' Jacobians (one
    pass over the data for all draws, by :class:`~pymc_extras.streaming.passes.full_data.FullDataLogp`;
    unnormalised, which PSIS allows), and ``log_q`` the approximation's exact log density.

    Parameters
    ----------
    idata : DataTree
        Draws from the approximation (``approx.sample()``, ``Trainer.sample_posterior()``).
    approximation : Approximation or Trainer
        What drew them: the ``pm.fit`` result (mean-field or full-rank ADVI), or pymc-extras'
        ``Trainer`` (its Gaussian guides, at its current state).
    model : Model, optional
        The streaming model; taken from the context if omitted.
    chunk_size : int, default 65,536
        Values per compiled call of the pass (see ``FullDataLogp``).

    Returns
    -------
    xarray.Dataset
        ``log_p`` and ``log_q``, dims ``chain`` and ``draw``, with the pass's count in
        ``attrs["passes"]``.

    Raises
    ------
    TypeError
        If the approximation has no known density (SVGD particles, an unknown guide).

    Notes
    -----
    Pathfinder's draws are by default already resampled by their importance weights
    ``log p − log q`` (``importance_sampling="psis"``), which is this correction applied once
    for the whole posterior; PSIS-LOO then runs on them as on MCMC draws.

    References
    ----------
    .. [1] Magnusson, M., Riis Andersen, M., Jonasson, J., & Vehtari, A. Leave-One-Out
       Cross-Validation for Bayesian Model Comparison in Large Data. AISTATS (2020), PMLR
       108:341–351.

    Examples
    --------
    .. code-block:: python

        approx = pm.fit(20_000, model=model)
        idata = approx.sample(1_000)
        densities = pmx.streaming.log_densities(idata, approx, model)
        loo = pmx.streaming.loo_subsample(
            idata, model, log_p=densities["log_p"], log_q=densities["log_q"]
        )
    """
    model = modelcontext(model)
    values = unconstrained_draws(idata, model)
    draws = Draws.from_posterior(idata, model)
    if hasattr(approximation, "groups"):
        log_q = _pymc_log_q(approximation, values)
    elif hasattr(approximation, "guide") and hasattr(approximation, "state"):
        if approximation.state is None:
            raise ValueError("The trainer has not been fitted yet: it has no approximation.")
        log_q = _guide_log_q(approximation.guide, approximation.state.params, model, values)
    else:
        raise TypeError(
            f"approximation must be what pm.fit returns or a pymc-extras Trainer, got "
            f"{type(approximation).__name__}."
        )
    full = FullDataLogp(model, chunk_size=chunk_size)
    names = [var.name for var in model.value_vars]  # FullDataLogp's order
    log_p = full.logp(_raveled(values, names))
    shape = (draws.chains, draws.draws)
    dataset = xr.Dataset(
        {
            "log_p": (("chain", "draw"), log_p.reshape(shape)),
            "log_q": (("chain", "draw"), log_q.reshape(shape)),
        },
        coords=draws.sample_coords,
    )
    dataset.attrs["passes"] = full.passes
    return dataset
