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
"""Chunks: what a source may yield, converted to aligned numeric arrays or refused by name."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pymc.exceptions import SourceDataError
from pymc.streaming.chunks import to_chunk


@pytest.mark.parametrize(
    "chunk, shapes",
    [
        (np.zeros((5, 3)), [(5, 3)]),
        ((np.zeros((5, 3)), np.zeros(5)), [(5, 3), (5,)]),
        (pd.DataFrame({"a": np.arange(4.0), "b": np.arange(4)}), [(4, 2)]),
        (pd.Series(np.arange(4.0)), [(4,)]),
        (pa.record_batch({"a": [1.0, 2.0], "b": [3.0, 4.0]}), [(2, 2)]),
        (pa.table({"a": [1.0, 2.0, 3.0]}), [(3, 1)]),
        ((pa.table({"a": [1.0, 2.0]}), pa.array([1, 0])), [(2, 1), (2,)]),
    ],
    ids=["array", "tuple", "dataframe", "series", "record-batch", "table", "arrow-tuple"],
)
def test_to_chunk_accepts_what_users_have(chunk, shapes):
    assert [part.shape for part in to_chunk(chunk)] == shapes


def test_arrow_chunk_keeps_column_values():
    chunk = to_chunk(pa.record_batch({"a": [1.0, 2.0], "b": [3.0, 4.0]}))
    np.testing.assert_array_equal(chunk[0], [[1.0, 3.0], [2.0, 4.0]])


@pytest.mark.parametrize(
    "chunk, match",
    [
        ((np.zeros((5, 3)), np.zeros(4)), "ragged chunk, its outputs have 5, 4 rows"),
        (np.array(["a", "b"]), "dtype <U1 is not numeric"),
        (pd.DataFrame({"a": ["x", "y"]}), "dtype object is not numeric"),
        (np.float64(1.0), "got a scalar"),
        (pa.record_batch({"a": pa.array([1.0, None])}), "column 'a' has 1 null value"),
        ({"x": 1}, "expected a numpy array"),
    ],
    ids=["ragged", "strings", "object-frame", "scalar", "arrow-nulls", "dict"],
)
def test_to_chunk_refuses_bad_data(chunk, match):
    with pytest.raises(SourceDataError, match=match):
        to_chunk(chunk)


@pytest.mark.parametrize(
    "chunk",
    [
        pd.DataFrame({"big": [2**53 + 1, 2], "x": [0.5, 1.0]}),
        pa.table({"big": [2**53 + 1, 2], "x": [0.5, 1.0]}),
    ],
    ids=["pandas", "arrow"],
)
def test_an_int64_above_2_53_beside_a_float_column_is_refused(chunk):
    with pytest.raises(
        SourceDataError,
        match=r"column 'big': 1 value\(s\) of dtype int64 do not fit the dtype float64 \(e\.g\. "
        r"9007199254740993 would become 9007199254740992\.0\)",
    ):
        to_chunk(chunk)
    exact = to_chunk(chunk.slice(1) if isinstance(chunk, pa.Table) else chunk.iloc[1:])
    np.testing.assert_array_equal(exact[0], [[2.0, 1.0]])
