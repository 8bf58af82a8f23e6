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
"""Predictions and posterior predictive checks of a streaming model on rows held in memory."""

from collections.abc import Sequence

import pymc as pm

from arviz_base import dict_to_dataset
from pymc.backends.arviz import coords_and_dims_for_inferencedata, find_constants, find_observations
from pymc.model import Model, modelcontext
from pymc.streaming.sources import Source
from xarray import DataTree

from pymc_extras.streaming.workflow.rows import rows_model

__all__ = ["log_likelihood_subsample", "posterior_predictive_subsample", "predict"]


def _posterior_only(idata) -> DataTree:
    if "posterior" not in getattr(idata, "children", {}):
        raise TypeError(
            f"Expected a DataTree with a posterior group (as approx.sample() or pmx.fit() "
            f"return), got {type(idata).__name__}."
        )
    return DataTree.from_dict({"posterior": idata["posterior"].to_dataset()})


def predict(
    idata: DataTree,
    data,
    model: Model | None = None,
    *,
    var_names: Sequence[str] | None = None,
    random_seed=None,
    progressbar: bool = False,
    **kwargs,
) -> DataTree:
    """Posterior predictive draws on new rows in memory, as ``pm.set_data`` + predictions.

    The model's streamed data are swapped for ``data``, as ``pm.set_data`` swaps a
    ``pm.Data``, in a copy of the model (:func:`pymc_extras.streaming.workflow.rows.rows_model`), and
    ``pm.sample_posterior_predictive(..., predictions=True)`` runs on it. The result is exactly
    what that function returns on the same model built on in-memory ``pm.Data`` after
    ``pm.set_data``, for the same posterior draws and ``random_seed``. For new data larger than
    memory, write the predictions to a file with
    :func:`pymc_extras.streaming.workflow.predictive_passes.predict_to_file`.

    Parameters
    ----------
    idata : DataTree
        Holds the posterior (``approx.sample()``, ``pmx.fit(...)``,
        ``Trainer.sample_posterior()``).
    data : array, tuple of arrays, or dict
        The new rows: one array per output of the stream, or one per output the model reads
        besides its observations (e.g. only ``X`` of a stream of ``(X, y)``), or a dict from
        minibatch variables (or their names) to arrays.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    var_names : list of str, optional
        Variables to predict; by default the observed variables (as PyMC's default).
        Deterministics of the data may be named too.
    random_seed : int, optional
        As ``pm.sample_posterior_predictive``'s.
    progressbar : bool, default False
        Show PyMC's progress bar.
    **kwargs
        Passed to ``pm.sample_posterior_predictive``.

    Returns
    -------
    DataTree
        With the groups ``predictions`` (dims ``chain``, ``draw`` and ``row``, the row of the
        new data) and ``predictions_constant_data``.

    Examples
    --------
    >>> import arviz as az, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.predictive import predict
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(2_000, 2)), rng.normal(size=2_000)
    >>> with pm.Model() as model:
    ...     X_mb, y_mb = pm.Minibatch(X, y, batch_size=100, streaming=True)
    ...     beta = pm.Normal("beta", 0, 1, shape=2)
    ...     obs = pm.Normal("y", X_mb @ beta, 1, observed=y_mb)
    >>> idata = az.from_dict({"posterior": {"beta": rng.normal(size=(1, 10, 2))}})
    >>> new = predict(idata, rng.normal(size=(5, 2)), model, random_seed=2)
    >>> new.predictions["y"].sizes
    Frozen({'chain': 1, 'draw': 10, 'row': 5})
    """
    model = modelcontext(model)
    if isinstance(data, Source):
        raise TypeError(
            "predict takes new rows in memory (arrays). For a source of new rows, larger than "
            "memory, use pymc_extras.streaming.predict_to_file, which writes the predictions "
            "out in chunks."
        )
    copy = rows_model(model, data=data)
    return pm.sample_posterior_predictive(
        _posterior_only(idata),
        model=copy,
        var_names=var_names,
        predictions=True,
        random_seed=random_seed,
        progressbar=progressbar,
        **kwargs,
    )


def posterior_predictive_subsample(
    idata: DataTree,
    model: Model | None = None,
    *,
    rows=1_000,
    seed=None,
    var_names: Sequence[str] | None = None,
    random_seed=None,
    log_likelihood: bool = True,
    progressbar: bool = False,
    **kwargs,
) -> DataTree:
    """Posterior predictive draws for a random subsample of rows, with their observed data.

    The rows are read from the stream (one pass at most; arrays in memory are gathered) into a
    copy of the model (:func:`pymc_extras.streaming.workflow.rows.rows_model`), on which
    ``pm.sample_posterior_predictive`` and ``pm.compute_log_likelihood`` run. The draws are
    those of the same model built in memory on the same rows, for the same posterior draws and
    ``random_seed``. The result has the groups ArviZ's checks read, so ``az.plot_ppc`` and
    ``az.loo_pit`` work on it as on an in-memory fit; their rows are a simple random sample of
    the dataset, so what they show estimates the whole data's picture, with sampling error
    that shrinks as ``rows`` grows. For summaries over every row, see
    :func:`pymc_extras.streaming.workflow.predictive_passes.ppc_summary`.

    Parameters
    ----------
    idata : DataTree
        Holds the posterior.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    rows : int or array of int, default 1,000
        How many rows to draw at random (without replacement), or which rows (row numbers).
    seed : int, optional
        Seeds the choice of rows (the same rows as ``arviz_stats.loo_subsample`` chooses for
        the same ``seed`` and number).
    var_names : list of str, optional
        Variables to draw; by default the observed variables. Deterministics that read the data
        may be named too: they are computed on the chosen rows.
    random_seed : int, optional
        Seeds the predictive draws, as ``pm.sample_posterior_predictive``'s.
    log_likelihood : bool, default True
        Add the pointwise log-likelihood of the rows (``pm.compute_log_likelihood``), which
        LOO-PIT needs.
    progressbar : bool, default False
        Show PyMC's progress bars.
    **kwargs
        Passed to ``pm.sample_posterior_predictive``.

    Returns
    -------
    DataTree
        Groups ``posterior`` (as given), ``posterior_predictive``, ``observed_data``,
        ``constant_data`` and, if asked, ``log_likelihood``; the rows' dimension (``row``) has
        the row numbers in the dataset as its coordinate.

    Examples
    --------
    >>> import arviz as az, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.predictive import posterior_predictive_subsample
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=5_000)
    >>> with pm.Model() as model:
    ...     y_mb = pm.Minibatch(y, batch_size=100, streaming=True)
    ...     mu = pm.Normal("mu")
    ...     obs = pm.Normal("y", mu, 1, observed=y_mb)
    >>> idata = az.from_dict({"posterior": {"mu": rng.normal(size=(1, 20))}})
    >>> check = posterior_predictive_subsample(idata, model, rows=300, seed=1, random_seed=2)
    >>> sorted(check.children)
    ['constant_data', 'log_likelihood', 'observed_data', 'posterior', 'posterior_predictive']
    >>> check.observed_data["y"].sizes
    Frozen({'row': 300})
    """
    model = modelcontext(model)
    copy = rows_model(model, rows=rows, seed=seed)
    posterior = _posterior_only(idata)
    result = pm.sample_posterior_predictive(
        posterior,
        model=copy,
        var_names=var_names,
        random_seed=random_seed,
        progressbar=progressbar,
        **kwargs,
    )
    result["posterior"] = posterior["posterior"]
    if log_likelihood:
        result["log_likelihood"] = pm.compute_log_likelihood(
            posterior, model=copy, extend_inferencedata=False, progressbar=progressbar
        )
    return result


def log_likelihood_subsample(
    idata: DataTree,
    model: Model | None = None,
    *,
    rows=1_000,
    seed=None,
    var_names: Sequence[str] | None = None,
    progressbar: bool = False,
) -> DataTree:
    """The pointwise log-likelihood of a random subsample of rows, with their observed data.

    ``pm.compute_log_likelihood`` on a copy of the model holding the rows
    (:func:`pymc_extras.streaming.workflow.rows.rows_model`): exactly the values of the in-memory model
    on those rows, for the same posterior draws. ``arviz_stats.loo`` on the result is PSIS-LOO
    of those rows alone; for the elpd of the whole dataset, see
    :func:`pymc_extras.streaming.workflow.loo.loo_subsample`.

    Parameters
    ----------
    idata : DataTree
        Holds the posterior.
    model : Model, optional
        The streaming model; taken from the context if omitted.
    rows : int or array of int, default 1,000
        How many rows to draw at random (without replacement), or which rows.
    seed : int, optional
        Seeds the choice of rows.
    var_names : list of str, optional
        Observed variables; by default all.
    progressbar : bool, default False
        Show PyMC's progress bar.

    Returns
    -------
    DataTree
        Groups ``posterior`` (as given), ``log_likelihood``, ``observed_data`` and
        ``constant_data``, the rows' dimension ``row`` holding their row numbers.

    Examples
    --------
    >>> import arviz as az, numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.predictive import log_likelihood_subsample
    >>> y = np.random.default_rng(0).normal(size=5_000)
    >>> with pm.Model() as model:
    ...     y_mb = pm.Minibatch(y, batch_size=100, streaming=True)
    ...     obs = pm.Normal("y", pm.Normal("mu"), 1, observed=y_mb)
    >>> idata = az.from_dict({"posterior": {"mu": np.zeros((1, 4))}})
    >>> log_likelihood_subsample(idata, model, rows=[0, 1]).log_likelihood["y"].shape
    (1, 4, 2)
    """
    model = modelcontext(model)
    copy = rows_model(model, rows=rows, seed=seed)
    posterior = _posterior_only(idata)
    log_likelihood = pm.compute_log_likelihood(
        posterior,
        model=copy,
        var_names=var_names,
        extend_inferencedata=False,
        progressbar=progressbar,
    )
    coords, dims = coords_and_dims_for_inferencedata(copy)
    groups = {"posterior": posterior["posterior"].to_dataset(), "log_likelihood": log_likelihood}
    for group, values in (
        ("observed_data", find_observations(copy)),
        ("constant_data", find_constants(copy)),
    ):
        groups[group] = dict_to_dataset(
            values, inference_library=pm, coords=coords, dims=dims, sample_dims=[]
        )
    return DataTree.from_dict(groups)
