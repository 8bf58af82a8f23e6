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
"""The fork's old module paths still import, with a DeprecationWarning naming the new path."""

import importlib
import sys

import pytest

STREAMING = "pymc_extras.streaming"
MOVED = {
    **{
        f"{STREAMING}.{old}": f"{STREAMING}.{new}"
        for old, new in {
            "adapters": "readers.adapters",
            "array_files": "readers.array_files",
            "arrow_columns": "readers.arrow_columns",
            "arrow_files": "readers.arrow_files",
            "chunked": "readers.chunked",
            "csv_files": "readers.csv_files",
            "dask_source": "readers.dask_source",
            "files": "readers.files",
            "npy_files": "readers.npy_files",
            "optional": "readers.optional",
            "parquet_metadata": "readers.parquet_metadata",
            "zarr_store": "readers.zarr_store",
            "dask_passes": "passes.pass_runner",
            "dask_recipes": "passes.dask_recipes",
            "full_data": "passes.full_data",
            "pass_mode": "passes.pass_mode",
            "approximation": "workflow.approximation",
            "convergence": "workflow.convergence",
            "deterministics": "workflow.deterministics",
            "loo": "workflow.loo",
            "output_files": "workflow.output_files",
            "pointwise": "workflow.pointwise",
            "predictive": "workflow.predictive",
            "predictive_passes": "workflow.predictive_passes",
            "row_outputs": "workflow.row_outputs",
        }.items()
    },
    "pymc_extras.inference.pathfinder.streaming": "pymc_extras.inference.pathfinder.full_data",
}
# Modules that were cut in two: the old path gives the names of both.
SPLIT = {
    f"{STREAMING}.rows": [f"{STREAMING}.workflow.data_blocks", f"{STREAMING}.workflow.rows"],
}


# The public names of the package before it had subpackages: they must stay importable from it.
DOCUMENTED = {
    "ArrowIPCSource", "CSVSource", "DaskSource", "EarlyStopping", "FeatherSource",
    "FullDataLogp", "HDF5Source", "NpySource", "ParquetSource", "PassReport", "ZarrSource",
    "choose_rows", "data_deterministics", "fit_until_converged", "log_densities",
    "log_likelihood_subsample", "loo_subsample", "posterior_predictive_subsample",
    "ppc_summary", "predict", "predict_to_file", "rows_model", "without_data_deterministics",
}  # fmt: skip


def test_the_public_names_before_the_subpackages_are_still_public():
    import pymc_extras.streaming as streaming

    assert DOCUMENTED <= set(streaming.__all__)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_warns_and_gives_the_same_objects(old):
    new = importlib.import_module(MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}") as caught:
        moved = importlib.import_module(old)
    # stacklevel=2: the warning points at the import, not at the shim.
    assert all(record.filename != moved.__file__ for record in caught)
    assert moved.__all__ == new.__all__
    for name in new.__all__:
        assert getattr(moved, name) is getattr(new, name)


@pytest.mark.parametrize("old", sorted(SPLIT))
def test_an_old_module_cut_in_two_gives_the_names_of_both(old):
    homes = [importlib.import_module(new) for new in SPLIT[old]]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to .*{SPLIT[old][-1]}"):
        moved = importlib.import_module(old)
    assert sorted(moved.__all__) == sorted(name for home in homes for name in home.__all__)
    for home in homes:
        for name in home.__all__:
            assert getattr(moved, name) is getattr(home, name)


def test_the_old_passes_module_names_come_from_the_package_with_a_warning():
    from pymc_extras.streaming.passes import minibatched_data

    with pytest.warns(DeprecationWarning, match="passes.data_chunks moved to .*minibatched_data"):
        from pymc_extras.streaming.passes import data_chunks
    assert data_chunks is minibatched_data.data_chunks
    with pytest.raises(ImportError, match="cannot import name 'nothing'"):
        from pymc_extras.streaming.passes import nothing  # noqa: F401
