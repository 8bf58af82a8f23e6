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
"""A pass reads its data in chunks of bounded rows, whatever the size of a Parquet row group."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytensor.tensor as pt
import pytest

from pymc.streaming.sources import Chunk, IterableSource

from pymc_extras.streaming.passes.minibatched_data import data_chunks, split_chunk

pyarrow = pytest.importorskip("pyarrow")

# One pass with the default rows, then one with rows larger than the row group (what a pass
# read before it was bounded), in a fresh process: pyarrow's pool records its own peak.
PEAKS = """
    import json, sys
    import pyarrow as pa
    import pytensor.tensor as pt
    from pymc_extras.streaming import ParquetSource
    from pymc_extras.streaming.passes.minibatched_data import data_chunks

    source = ParquetSource(sys.argv[1], columns=[[f"x{j}" for j in range(10)], "y"])
    placeholders = [pt.matrix("X", dtype="float64"), pt.vector("y", dtype="float64")]
    peaks, rows = {}, {}
    for label, size in (("bounded", None), ("whole_row_group", 10**8)):
        options = {} if size is None else {"rows": size}
        chunks = data_chunks(source, placeholders, **options)
        rows[label] = [len(chunk[0]) for chunk in chunks]
        peaks[label] = pa.default_memory_pool().max_memory() / 2**20
    print(json.dumps({"peaks_mb": peaks, "rows": rows}))
"""


def test_a_pass_over_one_big_row_group_holds_a_piece_of_it(tmp_path):
    import pyarrow.parquet as pq

    rows = 1_000_000  # one row group of 11 float64 columns: 88 MB decoded
    rng = np.random.default_rng(0)
    columns = {f"x{j}": rng.normal(size=rows) for j in range(10)} | {"y": rng.normal(size=rows)}
    path = tmp_path / "one_row_group.parquet"
    pq.write_table(pyarrow.table(columns), path, row_group_size=rows)
    del columns
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PEAKS), str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    peaks = result["peaks_mb"]
    assert sum(result["rows"]["bounded"]) == rows
    assert max(result["rows"]["bounded"]) == 65_536
    # Decoded a piece of 65,536 rows at a time (with two read ahead): about 27 MB at the peak.
    assert peaks["bounded"] < 48, peaks
    # The measurement can fail: the whole row group decoded at once holds well over 88 MB.
    assert peaks["whole_row_group"] > 88, peaks


def test_chunks_of_an_iterable_are_cut_to_rows():
    source = IterableSource([(np.arange(7.0), np.arange(7.0))] * 2)
    chunks = list(data_chunks(source, [pt.vector("a"), pt.vector("b")], rows=3))
    assert [len(chunk[0]) for chunk in chunks] == [3, 3, 1, 3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([chunk[1] for chunk in chunks[:3]]), np.arange(7))


def test_split_chunk_gives_views_of_at_most_rows():
    chunk: Chunk = (np.arange(10.0), np.arange(20.0).reshape(10, 2))
    pieces = list(split_chunk(chunk, 4))
    assert [len(piece[0]) for piece in pieces] == [4, 4, 2]
    assert all(np.shares_memory(piece[1], chunk[1]) for piece in pieces)
    np.testing.assert_array_equal(np.concatenate([piece[1] for piece in pieces]), chunk[1])
    empty = (np.zeros(0), np.zeros((0, 2)))
    assert [len(piece[0]) for piece in split_chunk(empty, 4)] == [0]
