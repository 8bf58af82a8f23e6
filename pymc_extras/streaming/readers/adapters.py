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
"""Which reader adapts which object given to ``pm.Minibatch(..., streaming=True)``.

Each function registers the readers of one package's types with
:func:`pymc.streaming.register_source`. PyMC calls it, through the entry point of that package's
name in the group ``pymc.streaming.sources`` (pymc-extras' ``pyproject.toml``), the first time it
meets an object of that package: an HDF5 dataset, a Zarr array, a Dask collection, a pyarrow
dataset, or pymc-extras' own ``DataLoader``.
"""

from pymc.exceptions import InvalidSourceError
from pymc.streaming.sources import Source, as_source, register_source

__all__ = [
    "register_dask",
    "register_h5py",
    "register_pyarrow",
    "register_pymc_extras",
    "register_zarr",
]


def register_h5py() -> None:
    import h5py

    from pymc_extras.streaming.readers.array_files import HDF5Source

    register_source(h5py.Dataset, HDF5Source, aligns=True)


def register_zarr() -> None:
    import zarr

    from pymc_extras.streaming.readers.array_files import ZarrSource

    register_source(zarr.Array, ZarrSource, aligns=True)


def register_dask() -> None:
    import dask.array as da
    import dask.dataframe as dd

    from pymc_extras.streaming.readers.dask_source import DaskSource

    for collection in (da.Array, dd.DataFrame, dd.Series):
        register_source(collection, DaskSource, aligns=True)


def register_pyarrow() -> None:
    import pyarrow.dataset as ds

    from pymc_extras.streaming.readers.arrow_files import ParquetSource

    @register_source(ds.FileSystemDataset)
    def _dataset(dataset: ds.FileSystemDataset) -> Source:
        if not isinstance(dataset.format, ds.ParquetFileFormat):
            raise InvalidSourceError(
                f"A pyarrow dataset of {dataset.format.default_extname} files cannot be streamed "
                "as a dataset: only Parquet datasets can. Open Arrow IPC files with "
                "pymc_extras.streaming.ArrowIPCSource and CSV with CSVSource."
            )
        return ParquetSource(dataset)


def register_pymc_extras() -> None:
    from pymc_extras.variational.dataloader import DataLoader, _ParquetDataset

    @register_source(DataLoader)
    def _loader(loader: DataLoader) -> Source:
        # The loader's rows, not its batches: pm.Minibatch batches and shuffles them itself.
        source = as_source(loader.dataset)
        if source.num_rows is None:
            source.num_rows = loader.total_size
        return source

    @register_source(_ParquetDataset)
    def _parquet(dataset: _ParquetDataset) -> Source:
        from pymc_extras.streaming.readers.arrow_files import ParquetSource

        # Row groups read in a random order, where iterating the dataset reads them in order.
        return ParquetSource(dataset._paths, columns=[list(dataset._columns)])
