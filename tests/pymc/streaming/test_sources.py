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
import numpy as np
import pytensor
import pytest

from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming.sources import ArraySource, IterableSource, ZippedSource, as_source, to_chunk


def rows_of(source):
    return [np.concatenate(parts) for parts in zip(*source.chunks())]


def test_array_source_knows_rows_and_reads_blocks():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    source = as_source(X, y)
    assert isinstance(source, ArraySource)
    assert (source.num_rows, source.restartable, source.random_access) == (10, True, True)
    np.testing.assert_array_equal(source.read(3, 5)[0], X[3:5])
    np.testing.assert_array_equal(rows_of(source)[1], y)


def test_memmap_source_reads_blocks_instead_of_gathering(tmp_path):
    data = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", shape=(100, 3))
    data[:] = np.arange(300.0).reshape(100, 3)
    source = as_source(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert source.random_access and not source.gathers_rows
    np.testing.assert_array_equal(source.read(10, 12)[0], data[10:12])


def test_aligned_arrays_of_different_lengths_are_refused():
    with pytest.raises(SourceDataError, match="different lengths: 10, 9 rows"):
        as_source(np.zeros(10), np.zeros(9))


def test_re_iterable_restarts_and_counts_list_rows():
    chunks = [np.arange(3.0), np.arange(3.0, 7.0)]
    source = as_source(chunks)
    assert (source.num_rows, source.restartable) == (7, True)
    for _ in range(2):
        np.testing.assert_array_equal(rows_of(source)[0], np.arange(7.0))


def test_factory_restarts_and_row_count_is_unknown():
    calls = []

    def factory():
        calls.append(1)
        return iter([np.ones((2, 2)), np.ones((3, 2))])

    source = as_source(factory)
    assert source.num_rows is None and source.restartable
    assert [len(rows_of(source)[0]) for _ in range(3)] == [5, 5, 5]
    assert len(calls) == 3  # the first pass is the one opened to learn the outputs


def test_len_is_not_taken_for_rows():
    class Batches:
        """Knows how many chunks it yields, not how many rows."""

        def __iter__(self):
            return iter([np.zeros(4), np.zeros(4)])

        def __len__(self):
            return 2

    assert as_source(Batches()).num_rows is None


def test_num_rows_attribute_is_used():
    class Table:
        num_rows = 8

        def __iter__(self):
            return iter([np.zeros(4), np.zeros(4)])

    assert as_source(Table()).num_rows == 8


def test_one_shot_iterator_reads_once():
    source = as_source(iter([np.zeros(2), np.zeros(2)]))
    assert not source.restartable
    assert len(rows_of(source)[0]) == 4
    with pytest.raises(SourceDataError, match="one-shot iterator and has been read to its end"):
        source.chunks()


def test_empty_sources_are_refused():
    with pytest.raises(SourceDataError, match="yielded no rows"):
        as_source(iter([]))
    with pytest.raises(SourceDataError, match="yielded no rows"):
        as_source(lambda: iter([np.zeros((0, 3))]))


def test_later_chunks_must_match_the_first():
    source = as_source([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(SourceDataError, match=r"rows of shape \(4,\) where the first chunk had"):
        rows_of(source)
    with pytest.raises(SourceDataError, match="not numeric"):  # a list is checked up front
        as_source([np.zeros(2), np.array(["a", "b"])])
    source = as_source(lambda: iter([np.zeros(2), np.array(["a", "b"])]))
    with pytest.raises(SourceDataError, match=r"chunk 1 of factory <lambda>.*not numeric"):
        rows_of(source)


def test_zipped_sources_align_different_chunkings():
    x = [np.arange(0.0, 3.0), np.arange(3.0, 10.0)]
    y = [np.arange(10) * 10 for _ in range(1)]
    source = as_source(x, y)
    assert isinstance(source, ZippedSource) and source.num_rows == 10
    xs, ys = rows_of(source)
    np.testing.assert_array_equal(ys, xs * 10)


def test_zipped_sources_of_different_lengths_are_refused():
    source = as_source(lambda: iter([np.zeros(5)]), lambda: iter([np.zeros(3), np.zeros(3)]))
    with pytest.raises(SourceDataError, match=r"source\(s\) \[0\] ended after 5 rows"):
        rows_of(source)
    with pytest.raises(SourceDataError, match="different lengths: 4, 5 rows"):
        as_source([np.zeros(4)], [np.zeros(5)])


@pytest.mark.parametrize(
    "obj, match",
    [
        (pytensor.shared(np.zeros(3)), "is a PyTensor variable"),
        ("data.parquet", r"is a path .* pymc_extras.streaming.ParquetSource"),
        (3, "is a int"),
        (None, "is a NoneType"),
        ({"x": np.zeros(3)}, "is a dict"),
        (object(), "neither an array, an iterable of chunks nor a function"),
    ],
    ids=["pytensor", "str", "int", "none", "dict", "object"],
)
def test_not_a_source(obj, match):
    with pytest.raises(InvalidSourceError, match=match):
        as_source(obj)


def test_factory_must_return_an_iterable():
    with pytest.raises(InvalidSourceError, match="returned int; it must return an iterator"):
        IterableSource(lambda: 3)


# --- values that would change, and counts no float64 holds --------------------------------------


def test_a_later_uint64_chunk_above_the_int64_range_is_refused():
    first, later = np.array([1, 2], np.int64), np.array([2**63 + 5, 3], np.uint64)
    source = IterableSource([first, later])
    with pytest.raises(
        SourceDataError,
        match=r"chunk 1 of .*, output 0: 1 value\(s\) of dtype uint64 do not fit the first "
        r"chunk's dtype int64.*9223372036854775813 would become -9223372036854775803",
    ):
        rows_of(source)
    fits = IterableSource([first, np.array([2**62, 3], np.uint64)])  # converted: no value changes
    np.testing.assert_array_equal(rows_of(fits)[0], [1, 2, 2**62, 3])


def test_complex_arrays_are_refused_by_every_way_in():
    values = np.array([1 + 2j, 3j])
    with pytest.raises(SourceDataError, match=r"dtype complex128 is not numeric"):
        to_chunk(values)
    with pytest.raises(SourceDataError, match=r"dtype complex128, which is not real numbers"):
        ArraySource([values])
    with pytest.raises(SourceDataError, match=r"data of dtype complex128 is not numeric"):
        rows_of(IterableSource([np.array([1.0]), values]))


@pytest.mark.parametrize("rows", [2**53 + 1, 2**63, 2**64], ids=["2**53+1", "2**63", "2**64"])
def test_a_declared_row_count_above_2_53_is_refused(rows):
    with pytest.raises(
        SourceDataError, match=rf"num_rows declares {rows:,} rows, more than 2\*\*53"
    ):
        IterableSource([np.zeros(3)], num_rows=rows)
    assert IterableSource([np.zeros(3)], num_rows=2**53).num_rows == 2**53
