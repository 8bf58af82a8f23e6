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
"""Files that change while they are read: the read that sees it fails, naming the file."""

import os

import numpy as np
import pytest

from pymc.exceptions import SourceDataError

from pymc_extras.streaming import ArrowIPCSource, CSVSource, NpySource, ParquetSource, ZarrSource
from tests.streaming.file_faults import unreadable

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")
zarr = pytest.importorskip("zarr")

N = 1000


def same_size_rewrite(path, write):
    """Write ``path`` again with ``write()``, then set its modification time back.

    The new file has the size of the old one (checked), so only its content tells them apart.
    """
    before = os.stat(path)
    write()
    after = os.stat(path)
    assert after.st_size == before.st_size, "the rewrite must keep the size"
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def table(offset=0.0):
    ids = np.arange(N, dtype=float)
    return pa.table({"x": ids + offset, "y": -ids - offset})


def write_parquet(path, offset=0.0):
    options = {"compression": "none", "use_dictionary": False, "row_group_size": 500}
    pq.write_table(table(offset), path, **options)


def test_a_parquet_file_replaced_with_the_same_size_and_time_is_noticed(tmp_path):
    path = tmp_path / "data.parquet"
    write_parquet(path)
    source = ParquetSource(path, columns=["x", "y"])
    np.testing.assert_array_equal(source.read_block(0)[0], np.arange(500.0))
    staging = tmp_path / "staging.parquet"
    write_parquet(staging, offset=0.5)
    same_size_rewrite(path, lambda: os.replace(staging, path))
    with pytest.raises(
        SourceDataError,
        match=r"data\.parquet' was rewritten or replaced while it was being streamed: its size "
        r"and modification time are as before, but its footer \(its row counts, offsets and "
        r"column statistics\) differ",
    ):
        source.read_block(1)


def test_a_parquet_row_group_rewritten_while_read_never_mixes_old_and_new_rows(tmp_path):
    path = tmp_path / "data.parquet"
    write_parquet(path)
    source = ParquetSource(path, columns=["x", "y"])
    pieces = source.iter_block(0, 100)
    np.testing.assert_array_equal(next(pieces)[0], np.arange(100.0))
    new = tmp_path / "new.parquet"
    write_parquet(new, offset=0.5)
    # In place, as a careless writer would: the open reader would go on into the new bytes.
    same_size_rewrite(path, lambda: path.write_bytes(new.read_bytes()))
    with pytest.raises(SourceDataError, match=r"data\.parquet' was rewritten or replaced"):
        next(pieces)


def test_a_metadata_change_that_leaves_the_content_alone_is_not_a_change(tmp_path):
    path = tmp_path / "data.parquet"
    write_parquet(path)
    source = ParquetSource(path, columns=["x", "y"])
    os.chmod(path, 0o600)  # the status-change time moves; the bytes are the same
    os.link(path, tmp_path / "hard-link.parquet")
    np.testing.assert_array_equal(source.read_block(1)[0], np.arange(500.0, 1000.0))


def test_an_ipc_file_replaced_with_the_same_size_and_time_is_noticed(tmp_path):
    path = tmp_path / "data.arrow"
    feather.write_feather(table(), path, compression="uncompressed", chunksize=500)
    source = ArrowIPCSource(path, columns=["x"])
    staging = tmp_path / "staging.arrow"
    feather.write_feather(table(0.5), staging, compression="uncompressed", chunksize=500)
    same_size_rewrite(path, lambda: os.replace(staging, path))
    with pytest.raises(SourceDataError, match=r"data\.arrow' was rewritten or replaced"):
        source.read_block(0)


def test_a_npy_file_rewritten_in_place_between_reads_is_noticed(tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, np.arange(float(N)))
    source = NpySource(path)
    np.testing.assert_array_equal(source.read(0, 10)[0], np.arange(10.0))
    same_size_rewrite(path, lambda: np.save(path, np.arange(float(N)) + 0.5))
    with pytest.raises(SourceDataError, match=r"X\.npy' was rewritten or replaced .* first and"):
        source.read(10, 20)


def test_a_zarr_array_whose_metadata_is_replaced_is_noticed(tmp_path):
    array = zarr.create_array(tmp_path / "data.zarr", shape=(N,), chunks=(100,), dtype="f8")
    array[:] = np.arange(float(N))
    source = ZarrSource(tmp_path / "data.zarr")
    metadata = tmp_path / "data.zarr" / "zarr.json"
    text = metadata.read_text()
    changed = text.replace('"fill_value": 0.0', '"fill_value": 1.0')
    assert changed != text and len(changed) == len(text)
    same_size_rewrite(metadata, lambda: metadata.write_text(changed))
    with pytest.raises(SourceDataError, match=r"zarr\.json' was rewritten or replaced"):
        source.read(0, 100)


def write_csv(path, rows, start=0):
    with open(path, "a") as file:
        file.writelines(f"{i},{-i}\n" for i in range(start, start + rows))


def test_a_csv_appended_to_while_read_delivers_no_row_past_the_count(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x,y\n")
    write_csv(path, 4000)
    source = CSVSource(path, block_bytes=4096)
    assert source.num_rows == 4000
    chunks = source.chunks()
    delivered = len(next(chunks)[0])
    write_csv(path, 500, start=4000)  # another program goes on writing
    with pytest.raises(SourceDataError, match=r"data\.csv' changed while it was being streamed"):
        for chunk in chunks:
            delivered += len(chunk[0])
    assert delivered < 4000


def test_a_csv_holding_more_rows_than_num_rows_says_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("x,y\n")
    write_csv(path, 4000)
    source = CSVSource(path, block_bytes=4096, num_rows=1000)
    with pytest.raises(
        SourceDataError, match=r"the files hold more than the 1,000 rows this source counted"
    ):
        list(source.chunks())


def test_a_file_made_unreadable_is_named_when_its_content_is_checked(tmp_path):
    path = tmp_path / "data.parquet"
    write_parquet(path)
    source = ParquetSource(path, columns=["x"])
    with unreadable(path):  # chmod moves the status-change time: the content is read again
        with pytest.raises(PermissionError, match=r"may not read '.*data\.parquet'"):
            source.read_block(0)
