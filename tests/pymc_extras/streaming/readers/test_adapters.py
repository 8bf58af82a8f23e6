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
"""pymc-extras' readers and data loaders, found by PyMC through entry points, with row counts."""

import os

import numpy as np
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError
from pymc.streaming import get_stream
from pymc.streaming.sources import as_source

from pymc_extras.streaming.readers.adapters import ParquetRowGroups
from pymc_extras.variational import DataLoader, parquet_source
from pymc_extras.variational.dataloader import _ParquetDataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROWS = 1_000


@pytest.fixture
def parquet_dir(tmp_path):
    rng = np.random.default_rng(0)
    for part in range(2):
        table = pa.table(
            {
                "x1": rng.normal(size=ROWS // 2),
                "x2": rng.normal(size=ROWS // 2),
                "y": np.arange(part * ROWS // 2, (part + 1) * ROWS // 2, dtype=float),
            }
        )
        pq.write_table(table, tmp_path / f"part{part}.parquet", row_group_size=100)
    return tmp_path


def test_parquet_source_streams_with_its_row_count(parquet_dir):
    source = as_source(parquet_source(str(parquet_dir), columns=["x1", "x2", "y"]))
    assert type(source).__name__ == "ParquetSource" and source.num_rows == ROWS
    assert source.block_rows == (100,) * 10  # row groups, visited in a random order each epoch
    with pm.Model():
        data = pm.Minibatch(parquet_source(str(parquet_dir)), batch_size=50, streaming=True)
        obs = pm.Normal("y", 0, 1, observed=data[:, 2])
    assert obs.owner.inputs[1].eval() == ROWS


def test_parquet_source_is_read_by_one_parquet_source(parquet_dir):
    dataset = parquet_source(str(parquet_dir), columns=["y", "x1"])
    assert isinstance(dataset, ParquetRowGroups) and isinstance(dataset, _ParquetDataset)
    assert dataset.n_rows == ROWS
    blocks = list(dataset)  # row groups in file order, columns in the order asked for
    assert [block.shape for block in blocks] == [(100, 2)] * 10
    np.testing.assert_array_equal(np.concatenate(blocks)[:, 0], np.arange(float(ROWS)))
    np.testing.assert_array_equal(np.concatenate(list(dataset)), np.concatenate(blocks))
    assert as_source(dataset) is dataset.source  # pm.Minibatch streams the same reader
    assert type(dataset.source).__name__ == "ParquetSource"
    loader = DataLoader(dataset, batch_size=250, total_size="auto")
    assert loader.total_size == ROWS
    np.testing.assert_array_equal(np.concatenate(list(loader)), np.concatenate(blocks))


def test_parquet_source_refuses_nulls_before_the_first_row(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3.0, None]}), tmp_path / "b.parquet")
    dataset = parquet_source(str(tmp_path))
    with pytest.raises(SourceDataError, match=r"b\.parquet, row group 0: column 'x' has 1 null"):
        next(iter(dataset))  # not NaN in the second array: refused before the first


def same_size_rewrite(path, content):
    """Replace ``path``'s bytes by ``content`` of the same size, keeping its modification time."""
    before = os.stat(path)
    assert len(content) == before.st_size, "the rewrite must keep the size"
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_parquet_source_notices_a_file_rewritten_while_it_is_read(tmp_path):
    def write(path, offset):
        options = {"compression": "none", "use_dictionary": False, "row_group_size": 50}
        pq.write_table(pa.table({"x": np.arange(100.0) + offset}), path, **options)

    path, new = tmp_path / "data.parquet", tmp_path / "new.bin"
    write(path, 0.0)
    write(new, 0.5)
    blocks = iter(parquet_source(str(tmp_path)))
    np.testing.assert_array_equal(next(blocks)[:, 0], np.arange(50.0))
    same_size_rewrite(path, new.read_bytes())
    with pytest.raises(SourceDataError, match=r"data\.parquet' was rewritten or replaced"):
        next(blocks)  # not the new file's rows after the old one's


def test_parquet_source_refuses_files_that_changed_since_they_were_listed(tmp_path):
    pq.write_table(pa.table({"x": np.arange(10.0)}), tmp_path / "a.parquet")
    dataset = parquet_source(str(tmp_path))
    pq.write_table(pa.table({"x": np.arange(12.0)}), tmp_path / "a.parquet")
    with pytest.raises(SourceDataError, match=r"hold 12 rows, but held 10 when parquet_source"):
        list(dataset)  # DataLoader(dataset, total_size="auto") took N = 10


def test_a_data_loader_streams_its_rows_with_its_total_size(parquet_dir):
    chunks = [np.arange(100.0)[:, None] + 100 * i for i in range(5)]
    loader = DataLoader(lambda: iter(chunks), batch_size=7, total_size=500)
    with pm.Model():
        data = pm.Minibatch(loader, batch_size=50, streaming=True, random_seed=1)
        obs = pm.Normal("y", 0, 1, observed=data[:, 0])
    assert obs.owner.inputs[1].eval() == 500
    stream = get_stream(data)
    seen = np.concatenate([stream.next_batch()[0][:, 0] for _ in range(10)])
    np.testing.assert_array_equal(np.sort(seen), np.arange(500.0))  # every row once an epoch

    loader = DataLoader(parquet_source(str(parquet_dir)), batch_size=7)
    assert type(as_source(loader)).__name__ == "ParquetSource"


def test_pm_minibatch_shuffles_a_data_loader_with_its_own_options_not_the_loaders():
    chunks = [np.arange(100.0)[:, None] + 100 * i for i in range(5)]
    loader = DataLoader(lambda: iter(chunks), batch_size=7, shuffle=True, seed=1, total_size=500)
    with pm.Model():
        data = pm.Minibatch(loader, batch_size=50, streaming=True, shuffle_buffer=0)
    stream = get_stream(data)
    seen = np.concatenate([stream.next_batch()[0][:, 0] for _ in range(10)])
    np.testing.assert_array_equal(seen, np.arange(500.0))  # shuffle_buffer=0: the rows' order


def test_a_pyarrow_dataset_of_other_files_is_refused_with_the_reader_to_use(tmp_path):
    ds = pytest.importorskip("pyarrow.dataset")
    import pyarrow.feather as feather

    feather.write_feather(pa.table({"y": np.arange(10.0)}), tmp_path / "y.feather")
    with pytest.raises(TypeError, match=r"only Parquet datasets can\. Open Arrow IPC files with"):
        pm.Minibatch(ds.dataset(tmp_path, format="feather"), batch_size=5, streaming=True)


def test_readers_moved_to_pymc_extras_keep_working_with_a_warning():
    from pymc_extras.streaming import ParquetSource

    with pytest.warns(FutureWarning, match="from pymc_extras.streaming import ParquetSource"):
        assert pm.streaming.ParquetSource is ParquetSource
