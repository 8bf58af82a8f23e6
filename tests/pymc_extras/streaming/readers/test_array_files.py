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
import collections
import os
import pickle
import sys
import tempfile

from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc.streaming import get_stream
from pymc.streaming.batching import Batcher
from pymc.streaming.sources import ArraySource

from pymc_extras.streaming.readers.array_files import HDF5Source, NpySource, ZarrSource
from tests.streaming.epoch_checks import assert_every_row_once_per_epoch

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

FORMATS = ["npy", "hdf5", "zarr"]


def table(n_rows):
    """Row ids as an X of shape (n, 2) and a y: any row of a batch tells where it came from."""
    ids = np.arange(n_rows)
    return np.column_stack([ids, -ids]).astype(float), ids


def write(kind, folder, X, y, chunk_rows=100, y_chunk_rows=None):
    """Store X and y as aligned outputs in a file of the given format; return its source."""
    folder, y_chunk_rows = Path(folder), y_chunk_rows or chunk_rows
    if kind == "npy":
        np.save(folder / "X.npy", X)
        np.save(folder / "y.npy", y)
        return NpySource(folder / "X.npy", folder / "y.npy")
    if kind == "hdf5":
        # Resizable datasets, whose chunks may hold more rows than the data.
        options = {"compression": "gzip", "maxshape": (None, *X.shape[1:])}
        with h5py.File(folder / "data.h5", "w") as file:
            file.create_dataset("X", data=X, chunks=(chunk_rows, X.shape[1]), **options)
            options["maxshape"] = (None,)
            file.create_dataset("y", data=y, chunks=(y_chunk_rows,), **options)
        return HDF5Source(folder / "data.h5", "X", "y")
    group = zarr.open_group(folder / "data.zarr", mode="w")
    group.create_array("X", shape=X.shape, chunks=(chunk_rows, X.shape[1]), dtype=X.dtype)[:] = X
    group.create_array("y", shape=y.shape, chunks=(y_chunk_rows,), dtype=y.dtype)[:] = y
    return ZarrSource(folder / "data.zarr", "X", "y")


def make_batcher(source, batch_size, shuffle_buffer, seed=0):
    state = {"seed": seed, "epoch": 0, "offset": 0}
    return Batcher(source, batch_size=batch_size, shuffle_buffer=shuffle_buffer, state=state)


def spy_reads(source):
    reads = []
    read = source.read
    source.read = lambda start, stop: reads.append((start, stop)) or read(start, stop)
    return reads


@pytest.mark.parametrize("kind", FORMATS)
def test_knows_its_rows_and_reads_aligned_outputs(kind, tmp_path):
    X, y = table(1_000)
    source = write(kind, tmp_path, X, y, chunk_rows=128)
    assert (source.num_rows, source.random_access, source.gathers_rows) == (1_000, True, False)
    assert source.read_alignment == (1 if kind == "npy" else 128)
    assert [(s.dtype, s.row_shape) for s in source.specs] == [(X.dtype, (2,)), (y.dtype, ())]
    for start, stop in [(0, 1), (120, 300), (990, 1_200)]:
        X_part, y_part = source.read(start, stop)
        np.testing.assert_array_equal(X_part, X[start:stop])
        np.testing.assert_array_equal(y_part, y[start:stop])
    np.testing.assert_array_equal(source.head(5)[1], y[:5])
    passes = [np.concatenate(parts) for parts in zip(*source.chunks())]
    np.testing.assert_array_equal(passes[0], X)
    np.testing.assert_array_equal(passes[1], y)
    assert str(tmp_path) in repr(source)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(FORMATS),
    n_rows=st.integers(1, 300),
    chunk_rows=st.integers(4, 120),
    y_chunk_rows=st.integers(4, 120),
    batch_fraction=st.floats(0, 1),
    shuffle_buffer=st.sampled_from([0, 7, 64, 100_000]),
    seed=st.integers(0, 2**32),
)
def test_every_row_once_per_epoch_aligned_in_full_batches(
    kind, n_rows, chunk_rows, y_chunk_rows, batch_fraction, shuffle_buffer, seed
):
    X, y = table(n_rows)
    batch_size = max(1, round(batch_fraction * n_rows))
    with tempfile.TemporaryDirectory() as folder:
        source = write(kind, folder, X, y, chunk_rows, y_chunk_rows)
        reads = spy_reads(source)
        batcher = make_batcher(source, batch_size, shuffle_buffer, seed)
        assert_every_row_once_per_epoch(batcher, n_rows, batch_size, epochs=2)
    align = source.read_alignment
    assert all(
        start % align == 0 and (stop % align == 0 or stop >= n_rows) for start, stop in reads
    )


@pytest.mark.parametrize(
    "chunk_rows, y_chunk_rows, alignment",
    [(100, 100, 100), (100, 150, 300), (96, 1_000, 1_000)],
    ids=["same", "common-multiple", "largest-chunk"],
)
@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_reads_are_aligned_to_the_chunks_on_disk(
    kind, chunk_rows, y_chunk_rows, alignment, tmp_path
):
    X, y = table(10_000)
    source = write(kind, tmp_path, X, y, chunk_rows, y_chunk_rows)
    assert source.read_alignment == alignment
    reads = spy_reads(source)
    for _ in range(5):
        next(make_batcher(source, 200, shuffle_buffer=3_200))
    assert reads and all(start % alignment == 0 for start, _ in reads)
    assert all(stop % alignment == 0 or stop == 10_000 for _, stop in reads)


@pytest.mark.parametrize(
    "read_alignment, fetched", [(None, {1}), (1, {1, 2})], ids=["aligned", "unaligned"]
)
def test_each_zarr_chunk_is_fetched_once_per_epoch(read_alignment, fetched):
    fetches = collections.Counter()

    class CountingDict(dict):
        def get(self, key, default=None):
            fetches[key] += 1
            return super().get(key, default)

        def __getitem__(self, key):
            fetches[key] += 1
            return super().__getitem__(key)

    store = zarr.storage.MemoryStore(CountingDict())
    zarr.create_array(store, shape=(10_000,), chunks=(300,), dtype="f8")[:] = np.arange(10_000.0)
    source = ZarrSource(zarr.open_array(store, mode="r"), read_alignment=read_alignment)
    fetches.clear()
    batcher = make_batcher(source, 100, shuffle_buffer=3_200, seed=1)
    for _ in range(100):  # one epoch
        next(batcher)
    chunk_fetches = [count for key, count in fetches.items() if key.startswith("c/")]
    assert len(chunk_fetches) == 34 and set(chunk_fetches) == fetched


def test_sharded_zarr_reads_are_aligned_to_inner_chunks(tmp_path):
    array = zarr.create_array(
        tmp_path / "y.zarr", shape=(4_000,), chunks=(50,), shards=(1_000,), dtype="f8"
    )
    array[:] = np.arange(4_000.0)
    source = ZarrSource(tmp_path / "y.zarr")
    assert source.read_alignment == 50
    np.testing.assert_array_equal(source.read(975, 1_025)[0], np.arange(975.0, 1_025.0))


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_read_alignment_can_be_set(kind, tmp_path):
    X, y = table(1_000)
    write(kind, tmp_path, X, y, chunk_rows=500)
    source = (
        HDF5Source(tmp_path / "data.h5", "X", "y", read_alignment=50)
        if kind == "hdf5"
        else ZarrSource(tmp_path / "data.zarr", "X", "y", read_alignment=50)
    )
    assert source.read_alignment == 50
    with pytest.raises(ValueError, match="read_alignment must be at least 1, got 0"):
        if kind == "hdf5":
            HDF5Source(tmp_path / "data.h5", "X", read_alignment=0)
        else:
            ZarrSource(tmp_path / "data.zarr", "X", read_alignment=0)


@pytest.mark.parametrize("kind", FORMATS)
def test_blocks_are_read_in_a_random_order_so_sorted_data_is_mixed(kind, tmp_path):
    n = 20_000
    X, y = table(n)  # stored sorted: row ids rise along the file
    source = write(kind, tmp_path, X, y, chunk_rows=500)
    batch = next(make_batcher(source, 1_000, shuffle_buffer=8_000, seed=3))[0][1]
    # The window holds 16 blocks of at least 500 rows, from anywhere in the file.
    assert len(np.unique(batch // 500)) >= 10 and batch.max() > n // 2 and batch.min() < n // 2
    again = next(make_batcher(source, 1_000, shuffle_buffer=8_000, seed=3))[0][1]
    np.testing.assert_array_equal(batch, again)


def fit_means(source, steps=1_000):
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(source, batch_size=50, streaming=True, shuffle_buffer=320)
        beta = pm.Normal("beta", 0, 10, shape=2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb)
        approx = pm.fit(
            steps, random_seed=3, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.05)
        )
    return approx.mean.eval(), approx.std.eval()


@pytest.mark.parametrize("kind", FORMATS)
def test_fit_from_a_file_equals_the_fit_from_arrays_in_memory(kind, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1_000, 2))
    y = X @ [1.0, -2.0] + rng.normal(size=1_000)
    source = write(kind, tmp_path, X, y, chunk_rows=100)
    reference = ArraySource([X, y])
    # The same blocks and seeds give the same batches, so the fits agree to rounding.
    reference.read_alignment = source.read_alignment
    streamed, in_memory = fit_means(source), fit_means(reference)
    np.testing.assert_allclose(streamed[0], in_memory[0], rtol=1e-10)
    np.testing.assert_allclose(streamed[1], in_memory[1], rtol=1e-10)
    assert np.abs(streamed[0][:2] - [1.0, -2.0]).max() < 0.2  # the fit went somewhere


def test_minibatch_reads_an_h5py_dataset_or_a_zarr_array_directly(tmp_path):
    X, y = table(500)
    write("hdf5", tmp_path, X, y)
    write("zarr", tmp_path, X, y)
    with h5py.File(tmp_path / "data.h5", "r") as file:
        X_mb = pm.Minibatch(file["X"], batch_size=20, streaming=True)
        assert isinstance(get_stream(X_mb).source, HDF5Source)
        assert get_stream(X_mb).num_rows == 500
    z_mb = pm.Minibatch(
        zarr.open_array(tmp_path / "data.zarr" / "y"), batch_size=20, streaming=True
    )
    assert isinstance(get_stream(z_mb).source, ZarrSource) and z_mb.eval().shape == (20,)
    with h5py.File(tmp_path / "data.h5", "r") as file:
        X_mb, y_mb = pm.Minibatch(file["X"], file["y"], batch_size=20, streaming=True)
        assert isinstance(get_stream(y_mb).source, HDF5Source)  # one aligned reader, not a zip


@pytest.mark.parametrize("kind", FORMATS)
def test_a_pickled_source_opens_the_file_again(kind, tmp_path):
    X, y = table(300)
    source = pickle.loads(pickle.dumps(write(kind, tmp_path, X, y)))
    np.testing.assert_array_equal(source.read(250, 260)[0], X[250:260])


def test_fortran_ordered_npy_reads_rows(tmp_path):
    X = np.asfortranarray(np.arange(3_000.0).reshape(1_000, 3))
    np.save(tmp_path / "X.npy", X)
    np.testing.assert_array_equal(NpySource(tmp_path / "X.npy").read(10, 700)[0], X[10:700])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")
def test_npy_pages_read_leave_the_process_memory(tmp_path):
    np.save(tmp_path / "big.npy", np.ones((200_000, 8)))  # 12.8 MB
    source = NpySource(tmp_path / "big.npy")
    for _ in source.chunks():
        pass
    resident, in_file = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            in_file = line.endswith("big.npy")
        elif in_file and fields[0] == "Rss:":
            resident += int(fields[1])
    assert resident < 1_024  # kB: one page or so, not the 12.8 MB of the pass


# --- faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: NpySource(p / "nope.npy"), r"No such \.npy file: '.*nope\.npy'"),
        (lambda p: HDF5Source(p / "nope.h5", "X"), r"No such HDF5 file: '.*nope\.h5'"),
        (lambda p: ZarrSource(p / "nope.zarr"), r"No Zarr array or group at '.*nope\.zarr'"),
    ],
    ids=FORMATS,
)
def test_a_missing_file_is_named(make, match, tmp_path):
    with pytest.raises(FileNotFoundError, match=match):
        make(tmp_path)


def bad_files(folder):
    """Files of each format holding a string, a scalar, and outputs of 10 and 9 rows."""
    np.save(folder / "text.npy", np.array(["a", "b"]))
    np.save(folder / "scalar.npy", np.float64(1.0))
    np.save(folder / "ten.npy", np.zeros(10))
    np.save(folder / "nine.npy", np.zeros(9))
    with h5py.File(folder / "bad.h5", "w") as file:
        file["text"], file["scalar"] = np.array([b"a", b"b"]), 1.0
        file["ten"], file["nine"] = np.zeros(10), np.zeros(9)
        file.create_group("group")
    group = zarr.open_group(folder / "bad.zarr", mode="w")
    group.create_array("text", shape=(2,), dtype=str)
    group.create_array("scalar", shape=(), dtype="f8")
    group.create_array("ten", shape=(10,), dtype="f8")
    group.create_array("nine", shape=(9,), dtype="f8")
    group.create_group("group")


def open_bad(kind, folder, *names):
    if kind == "npy":
        return NpySource(*(folder / f"{name}.npy" for name in names))
    if kind == "hdf5":
        return HDF5Source(folder / "bad.h5", *names)
    return ZarrSource(folder / "bad.zarr", *names)


@pytest.mark.parametrize(
    "names, match",
    [
        (["text"], r"text.* has dtype \S+, which is not numeric"),
        (["scalar"], r"'.*scalar.*' is 0-dimensional"),
        (["ten", "nine"], r"different numbers of rows \(.*ten.*: 10, .*nine.*: 9\)"),
    ],
    ids=["non-numeric", "0-d", "row-counts"],
)
@pytest.mark.parametrize("kind", FORMATS)
def test_bad_outputs_are_named(kind, names, match, tmp_path):
    bad_files(tmp_path)
    with pytest.raises(SourceDataError, match=match):
        open_bad(kind, tmp_path, *names)


@pytest.mark.parametrize(
    "kind, match",
    [
        ("hdf5", r"Dataset 'nope' of '.*bad\.h5' is not there\. Its datasets are: 'nine', "),
        ("zarr", r"Array 'nope' of Zarr group '.*bad\.zarr' is not there\. Its arrays are: 'nine'"),
    ],
)
def test_a_missing_name_lists_what_is_there(kind, match, tmp_path):
    bad_files(tmp_path)
    with pytest.raises(SourceDataError, match=match):
        open_bad(kind, tmp_path, "nope")
    with pytest.raises(SourceDataError, match=r"'group' of .* is a group"):
        open_bad(kind, tmp_path, "group")
    with pytest.raises(InvalidSourceError, match=r"Name the \w+ to stream from .*'ten'"):
        open_bad(kind, tmp_path)


def test_a_file_with_one_array_needs_no_name(tmp_path):
    with h5py.File(tmp_path / "y.h5", "w") as file:
        file["inner/y"] = np.arange(5.0)
    assert HDF5Source(tmp_path / "y.h5").num_rows == 5
    zarr.open_group(tmp_path / "y.zarr", mode="w").create_array("y", shape=(7,), dtype="f8")
    assert ZarrSource(tmp_path / "y.zarr").num_rows == 7


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda p: NpySource(np.zeros(3)), InvalidSourceError, "takes paths to .npy files"),
        (lambda p: NpySource(), InvalidSourceError, "at least one path"),
        (lambda p: HDF5Source(3), InvalidSourceError, "takes a path, an h5py File"),
        (lambda p: ZarrSource(3), InvalidSourceError, "takes zarr arrays or groups"),
    ],
    ids=["npy-array", "npy-nothing", "hdf5-int", "zarr-int"],
)
def test_what_is_not_a_file_is_refused(make, error, match, tmp_path):
    with pytest.raises(error, match=match):
        make(tmp_path)


def test_a_closed_hdf5_file_is_refused(tmp_path):
    write("hdf5", tmp_path, *table(10))
    with h5py.File(tmp_path / "data.h5", "r") as file:
        dataset = file["X"]
    with pytest.raises(SourceDataError, match=r"is closed\. Keep its file open"):
        HDF5Source(dataset)


def truncate(path, keep):
    with open(path, "r+b") as file:
        file.truncate(keep)


@pytest.mark.parametrize("kind", ["npy", "hdf5"])
def test_a_truncated_file_is_refused_when_opened(kind, tmp_path):
    source = write(kind, tmp_path, *table(1_000), chunk_rows=100)
    del source
    path = tmp_path / ("X.npy" if kind == "npy" else "data.h5")
    truncate(path, path.stat().st_size // 2)
    # A .npy header is checked against the file's size; h5py finds the truncation itself.
    match = (
        r"(declares an array of shape \(1000, 2\)|cannot be opened as an HDF5 file \().*truncated"
    )
    with pytest.raises(SourceDataError, match=match) as caught:
        NpySource(path) if kind == "npy" else HDF5Source(path, "X")
    assert str(path) in str(caught.value)
    assert kind == "npy" or caught.value.__cause__ is not None


def test_a_corrupt_zarr_metadata_file_is_refused(tmp_path):
    write("zarr", tmp_path, *table(100))
    (tmp_path / "data.zarr" / "X" / "zarr.json").write_text("{not json")
    with pytest.raises(SourceDataError, match=r"data\.zarr/X' cannot be opened as a Zarr array"):
        ZarrSource(tmp_path / "data.zarr" / "X")


@pytest.mark.parametrize("kind", ["hdf5", "zarr"])
def test_a_corrupt_chunk_fails_the_read_naming_file_and_rows(kind, tmp_path):
    source = write(kind, tmp_path, *table(1_000), chunk_rows=100)
    if kind == "hdf5":
        offset = source._datasets[0].id.get_chunk_info(3).byte_offset
        source.close()
        with open(tmp_path / "data.h5", "r+b") as file:  # corrupt before the source opens it
            file.seek(offset)
            file.write(b"\xff" * 64)
        source = HDF5Source(tmp_path / "data.h5", "X", "y")
        match = r"Reading rows 300:400 of dataset '/X' of '.*data\.h5' failed: OSError"
    else:
        (tmp_path / "data.zarr" / "X" / "c" / "3" / "0").write_bytes(b"garbage")
        match = r"Reading rows 300:400 of Zarr array '.*data\.zarr/X' failed: RuntimeError"
    np.testing.assert_array_equal(source.read(0, 300)[1], np.arange(300))
    with pytest.raises(SourceDataError, match=match) as caught:
        source.read(300, 400)
    assert caught.value.__cause__ is not None


def rewrite(kind, folder, n_rows):
    """Write the data again with n_rows, as another program would: a new file in its place."""
    folder = Path(folder)
    if kind == "zarr":  # a directory store is rewritten in place, metadata and all
        write(kind, folder, *table(n_rows))
        return
    staging = folder / "staging"
    staging.mkdir(exist_ok=True)
    write(kind, staging, *table(n_rows))
    name = "X.npy" if kind == "npy" else "data.h5"
    os.replace(staging / name, folder / name)


@pytest.mark.parametrize("kind", FORMATS)
def test_a_file_changed_between_epochs_is_named(kind, tmp_path):
    source = write(kind, tmp_path, *table(200))
    batcher = make_batcher(source, 50, shuffle_buffer=64)
    for _ in range(4):  # one epoch
        next(batcher)
    rewrite(kind, tmp_path, 150)
    with pytest.raises(SourceDataError, match=r"(X\.npy|data\.h5|X/zarr\.json)' changed while"):
        next(batcher)


def test_a_file_changed_during_a_fit_stops_it_with_the_file_named(tmp_path):
    source = write("npy", tmp_path, *table(2_000))
    steps = []
    with pm.Model():
        # The reader is about 74,000 rows (148 steps) ahead: the error comes when the fit
        # reaches the batch that could not be read.
        X_mb, _ = pm.Minibatch(source, batch_size=500, streaming=True)
        pm.Normal("x", pm.Normal("mu", 0, 1), 1, observed=X_mb[:, 0])

        def change_the_file(approx, loss, i):
            steps.append(i)
            if i == 2:
                rewrite("npy", tmp_path, 100)

        with pytest.raises(SourceDataError, match=r"X\.npy' changed while it was being streamed"):
            # One step per call: the callback changes the file between reads.
            pm.fit(1_000, callbacks=[change_the_file], progressbar=False, steps_per_call=1)
    assert 2 < len(steps) < 300


@pytest.mark.parametrize(
    "make, package, extra",
    [
        (lambda p: HDF5Source(p / "data.h5", "X"), "h5py", "hdf5"),
        (lambda p: ZarrSource(p / "data.zarr"), "zarr", "zarr"),
    ],
    ids=["hdf5", "zarr"],
)
def test_a_missing_package_is_named_with_its_extra(make, package, extra, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if not installed
    match = rf"needs the package '{package}'.*pip install \"pymc-extras\[{extra}\]\""
    with pytest.raises(ModuleNotFoundError, match=match):
        make(tmp_path)
