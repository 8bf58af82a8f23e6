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
"""Deterministics of a streaming model that read its streamed data: which, and a model without."""

from pymc.model import Model, modelcontext
from pymc.model.fgraph import ModelDeterministic, fgraph_from_model, model_from_fgraph

from pymc_extras.streaming.passes.minibatched_data import minibatched_data

__all__ = ["data_deterministics", "without_data_deterministics"]


def data_deterministics(model: Model | None = None) -> list[str]:
    """The names of the model's deterministics that read streamed (or minibatched) data.

    Such a deterministic (``mu = pm.Deterministic("mu", X_mb @ beta)``) has one value per row
    of a dataset that is not in memory; the buffer holds one batch of it. PyMC refuses to
    compute it on that batch (``approx.sample()`` raises ``StreamingNotSupportedError``).
    Compute it where you choose: on rows you pick, with ``with
    pmx.streaming.rows_model(model, rows=...): approx.sample()`` (the rows' numbers are its
    coordinate), or over every row, summarised, with ``pmx.streaming.predict_to_file`` or
    ``ppc_summary``; or leave it out with :func:`without_data_deterministics`.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.deterministics import data_deterministics
    >>> X = np.ones((100, 2))
    >>> with pm.Model() as model:
    ...     X_mb = pm.Minibatch(X, batch_size=10, streaming=True)
    ...     beta = pm.Normal("beta", shape=2)
    ...     total = pm.Deterministic("total", beta.sum())
    ...     mu = pm.Deterministic("mu", X_mb @ beta)
    >>> data_deterministics(model)
    ['mu']
    """
    model = modelcontext(model)
    return [det.name for det in model.deterministics if minibatched_data([det])]


def without_data_deterministics(model: Model | None = None) -> Model:
    """A copy of a streaming model without the deterministics that read streamed data.

    It reads the same streams (and fits the same), and its posterior can be drawn and
    converted by every method, since nothing in it is computed per row of data that is not in
    memory: for example ``pmx.fit(method="pathfinder", model=without_data_deterministics(m))``
    on a model whose ``mu = pm.Deterministic("mu", X_mb @ beta)`` would otherwise stop the
    conversion of its draws. Variables that use those deterministics keep using their values.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> from pymc_extras.streaming.workflow.deterministics import without_data_deterministics
    >>> X, y = np.ones((100, 2)), np.zeros(100)
    >>> with pm.Model() as model:
    ...     X_mb, y_mb = pm.Minibatch(X, y, batch_size=10, streaming=True)
    ...     beta = pm.Normal("beta", shape=2)
    ...     mu = pm.Deterministic("mu", X_mb @ beta)
    ...     obs = pm.Normal("y", mu, 1, observed=y_mb)
    >>> [det.name for det in without_data_deterministics(model).deterministics]
    []
    """
    model = modelcontext(model)
    names = set(data_deterministics(model))
    # Initial values do not change the model, and fgraph_from_model refuses them.
    initial_values = dict(model.rvs_to_initial_values)
    model.rvs_to_initial_values.update(dict.fromkeys(initial_values))
    try:
        fgraph, _ = fgraph_from_model(model)
    finally:
        model.rvs_to_initial_values.update(initial_values)
    for node in list(fgraph.toposort()):
        if isinstance(node.op, ModelDeterministic) and node.op.name in names:
            fgraph.replace(node.outputs[0], node.inputs[0], import_missing=True)
    copy = model_from_fgraph(fgraph, mutate_fgraph=True)
    for rv, value in initial_values.items():
        if value is not None:
            copy.set_initval(copy[rv.name], value)
    return copy
