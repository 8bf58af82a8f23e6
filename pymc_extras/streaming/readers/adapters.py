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

:class:`ParquetRowGroups` is what pymc-extras' ``parquet_source`` returns: its files, read by
:class:`~pymc_extras.streaming.ParquetSource`, so that pymc-extras has one Parquet reader.
"""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming.sources import Source, as_source, register_source

from pymc_extras.variational.dataloader import _ParquetDataset

__all__ = ["ParquetRowGroups"]

if TYPE_CHECKING:
    from pymc_extras.streaming.readers.arrow_files import ParquetSource


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


class ParquetRowGroups(_ParquetDataset):
    """Parquet files as pymc-extras' ``DataLoader`` reads them: one array per row group, in order.

    What ``pymc_extras.variational.parquet_source`` returns, once it has listed the files, checked
    the first one's columns and summed the row counts of their footers (``n_rows``). The rows are
    read by a :class:`~pymc_extras.streaming.ParquetSource`, built when the dataset is first read:
    every file's footer is then checked (columns, types, row counts against the column chunks,
    nulls) before any row is read, each file is stamped so that a change while it is streamed is
    an error, and the rows of each row group are checked against its footer. Given to
    ``pm.Minibatch(..., streaming=True)``, the same source streams the row groups in a random
    order.

    Parameters
    ----------
    paths : list of str
        The Parquet files, in the order their row groups are yielded.
    columns : list of str
        The columns of each array, in order.
    n_rows : int
        The rows the files' footers declared when they were listed; the files must still hold
        as many when they are read.

    Examples
    --------
    .. code-block:: python

        dataset = pmx.variational.parquet_source("data/", columns=["x1", "x2", "y"])
        loader = pmx.variational.DataLoader(dataset, batch_size=256, total_size="auto")
        X_mb = pm.Minibatch(dataset, batch_size=256, streaming=True)  # or stream it
    """

    def __init__(self, paths: list[str], columns: list[str], n_rows: int):
        # Not upstream's reader state: the source below is the one reader.
        self._paths = list(paths)
        self._columns = list(columns)
        self.n_rows = int(n_rows)
        self._source: ParquetSource | None = None

    @property
    def source(self) -> "ParquetSource":
        """The :class:`~pymc_extras.streaming.ParquetSource` that reads the files (built once).

        Raises
        ------
        SourceDataError
            If a file cannot supply the columns (missing, of another type, nulls), or its
            footer does not hold together, or the files hold other rows than ``n_rows``.
        """
        if self._source is None:
            from pymc_extras.streaming.readers.arrow_files import ParquetSource

            # The files as listed, not a dataset: folder names are not columns here.
            source = ParquetSource(self._paths, columns=[self._columns], partitioning=None)
            if source.num_rows != self.n_rows:
                raise SourceDataError(
                    f"The {len(self._paths)} Parquet file(s) starting with {self._paths[0]!r} "
                    f"hold {source.num_rows} rows, but held {self.n_rows} when parquet_source "
                    "listed them: they changed since. Call parquet_source again once they are "
                    "written."
                )
            self._source = source
        return self._source

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield each row group's rows as one ``(rows, len(columns))`` array, in file order."""
        for chunk in self.source.chunks():
            yield chunk[0]

    def __repr__(self) -> str:
        return f"ParquetRowGroups({len(self._paths)} files, columns={self._columns})"


def register_pymc_extras() -> None:
    from pymc_extras.variational.dataloader import DataLoader

    @register_source(DataLoader)
    def _loader(loader: DataLoader) -> Source:
        # The loader's rows, not its batches: pm.Minibatch batches and shuffles them itself.
        source = as_source(loader.dataset)
        if source.num_rows is None:
            source.num_rows = loader.total_size
        return source

    @register_source(ParquetRowGroups)
    def _parquet(dataset: ParquetRowGroups) -> Source:
        # Row groups read in a random order, where iterating the dataset reads them in order.
        return dataset.source
