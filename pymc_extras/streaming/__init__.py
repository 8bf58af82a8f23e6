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
"""Streaming data for PyMC models: readers, and what runs on the data they read.

The readers are sources for ``pm.Minibatch(source, batch_size=..., streaming=True)``; PyMC also
finds them by itself for HDF5 datasets, Zarr arrays, Dask collections, pyarrow datasets and
pymc-extras' ``DataLoader`` (:mod:`pymc_extras.streaming.adapters`). Attributes are imported on
first use, so importing this package imports no reader and no optional dependency.
"""

import importlib

_HOMES = {
    "ArrowIPCSource": "pymc_extras.streaming.arrow_files",
    "CSVSource": "pymc_extras.streaming.csv_files",
    "FeatherSource": "pymc_extras.streaming.arrow_files",
    "ParquetSource": "pymc_extras.streaming.arrow_files",
    "HDF5Source": "pymc_extras.streaming.array_files",
    "NpySource": "pymc_extras.streaming.npy_files",
    "ZarrSource": "pymc_extras.streaming.array_files",
    "DaskSource": "pymc_extras.streaming.dask_source",
    "FullDataLogp": "pymc_extras.streaming.full_data",  # series: streaming-pathfinder
    # series: streaming-workflow: begin
    # The workflow after the fit: convergence of the noisy streamed objective, predictions on
    # new data, posterior predictive checks, pointwise log-likelihoods, sub-sampled PSIS-LOO.
    "EarlyStopping": "pymc_extras.streaming.convergence",
    "fit_until_converged": "pymc_extras.streaming.convergence",
    "choose_rows": "pymc_extras.streaming.rows",
    "rows_model": "pymc_extras.streaming.rows",
    "predict": "pymc_extras.streaming.predictive",
    "posterior_predictive_subsample": "pymc_extras.streaming.predictive",
    "log_likelihood_subsample": "pymc_extras.streaming.predictive",
    "PassReport": "pymc_extras.streaming.predictive_passes",
    "predict_to_file": "pymc_extras.streaming.predictive_passes",
    "ppc_summary": "pymc_extras.streaming.predictive_passes",
    "loo_subsample": "pymc_extras.streaming.loo",
    "log_densities": "pymc_extras.streaming.approximation",
    "data_deterministics": "pymc_extras.streaming.deterministics",
    "without_data_deterministics": "pymc_extras.streaming.deterministics",
    # series: streaming-workflow: end
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pymc_extras.streaming' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
