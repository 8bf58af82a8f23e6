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
"""Files that users did not write: crafted, truncated, unreadable, declaring sizes they lack."""

import gc
import json
import os
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc

from pathlib import Path

import numpy as np
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError
from pymc.streaming import get_stream

from pymc_extras.streaming import (  # the readers import their packages when they are built
    ArrowIPCSource,
    CSVSource,
    HDF5Source,
    NpySource,
    ParquetSource,
    ZarrSource,
)
from pymc_extras.streaming.readers import arrow_files
from tests.streaming.file_faults import unreadable

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
feather = pytest.importorskip("pyarrow.feather")
pacsv = pytest.importorskip("pyarrow.csv")
h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

N = 400
IDS = np.arange(N)
X = np.column_stack([IDS, -IDS]).astype(float)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("pymc-stream")]


def frame(n=N):
    ids = np.arange(n)
    return pa.table({"x1": ids.astype(float), "x2": -ids.astype(float), "y": ids})


def write(kind, folder):
    """The ids as X (two columns) and y, in one file of ``kind``; returns the reader."""
    folder = Path(folder)
    if kind == "parquet":
        pq.write_table(frame(), folder / "data.parquet", row_group_size=100)
        return ParquetSource(folder / "data.parquet", columns=[["x1", "x2"], "y"])
    if kind == "ipc":
        feather.write_feather(frame(), folder / "data.arrow", chunksize=100)
        return ArrowIPCSource(folder / "data.arrow", columns=[["x1", "x2"], "y"])
    if kind == "csv":
        pacsv.write_csv(frame(), folder / "data.csv")
        return CSVSource(folder / "data.csv", columns=[["x1", "x2"], "y"])
    if kind == "npy":
        np.save(folder / "X.npy", X)
        np.save(folder / "y.npy", IDS)
        return NpySource(folder / "X.npy", folder / "y.npy")
    if kind == "hdf5":
        with h5py.File(folder / "data.h5", "w") as file:
            file.create_dataset("X", data=X, chunks=(100, 2))
            file.create_dataset("y", data=IDS, chunks=(100,))
        return HDF5Source(folder / "data.h5", "X", "y")
    group = zarr.open_group(folder / "data.zarr", mode="w")
    group.create_array("X", shape=X.shape, chunks=(100, 2), dtype="f8")[:] = X
    group.create_array("y", shape=IDS.shape, chunks=(100,), dtype="i8")[:] = IDS
    return ZarrSource(folder / "data.zarr", "X", "y")


READERS = ["parquet", "ipc", "csv", "npy", "hdf5", "zarr"]


def regression(source, **options):
    with pm.Model() as model:
        X_mb, y_mb = pm.Minibatch(source, batch_size=50, streaming=True, **options)
        beta = pm.Normal("beta", 0, 1)
        pm.Normal("y", X_mb[:, 0] * beta, 1, observed=y_mb)
    return model, get_stream(X_mb)


def run_child(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python, where a crash cannot take the test session with it."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def open_files_and_maps(folder) -> list[str]:
    """The files under ``folder`` that this process holds open or mapped."""
    folder = str(Path(folder).resolve())
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(folder):
            held.append(target)
    for line in Path("/proc/self/maps").read_text().splitlines():
        if folder in line:
            held.append(line.split()[-1])
    return held


# --- crafted and declared sizes ------------------------------------------------------------------


def crafted_ipc(path, rows=1237, claimed=1237 * 1000):
    """An Arrow IPC file whose record batch claims more rows than its buffers hold."""
    table = pa.table({"x": np.arange(rows, dtype=float), "y": np.arange(rows)})
    feather.write_feather(table, path, compression="uncompressed", chunksize=rows)
    data = bytearray(Path(path).read_bytes())
    count = struct.pack("<q", rows)
    for at in [i for i in range(len(data) - 7) if data[i : i + 8] == count]:
        data[at : at + 8] = struct.pack("<q", claimed)
    Path(path).write_bytes(bytes(data))


def test_an_ipc_record_batch_claiming_more_rows_than_its_buffers_is_refused(tmp_path):
    crafted_ipc(tmp_path / "crafted.arrow")
    with pytest.raises(
        SourceDataError, match=r"record batch 0 declares 1237000 rows, which its buffers do not"
    ):
        ArrowIPCSource(tmp_path / "crafted.arrow", columns=["x", "y"])


def test_an_ipc_batch_is_validated_again_when_it_is_read(tmp_path):
    path = tmp_path / "data.arrow"
    crafted_ipc(path)
    feather.write_feather(  # the same bytes but for the rows claimed, as crafted_ipc writes
        pa.table({"x": np.arange(1237.0), "y": np.arange(1237)}),
        path,
        compression="uncompressed",
        chunksize=1237,
    )
    source = ArrowIPCSource(path, columns=["x", "y"])
    stamp = os.stat(path)
    crafted_ipc(path)  # changed in place, its size and time kept
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with pytest.raises(SourceDataError, match=r"data\.arrow' was rewritten or replaced"):
        source.read_block(0)  # its first bytes tell the stamps
    source._stamps.check = lambda path=None: None  # as for a change deep in a large file
    with pytest.raises(
        SourceDataError, match=r"record batch 0 failed \(corrupt or crafted file\?\).*too small"
    ):
        source.read_block(0)


def peak_bytes(action):
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def declared_files(kind, folder, rows=10**12):
    """A few hundred bytes that declare ``rows`` rows."""
    folder = Path(folder)
    if kind == "npy":  # rows of nothing: the file backs the declaration exactly
        with open(folder / "big.npy", "wb") as file:
            header = {"descr": "<f8", "fortran_order": False, "shape": (rows, 0)}
            np.lib.format.write_array_header_1_0(file, header)
        return NpySource(folder / "big.npy")
    if kind == "hdf5":  # chunks never written read as the fill value
        with h5py.File(folder / "big.h5", "w") as file:
            file.create_dataset("x", shape=(rows,), chunks=(4096,), dtype="f8")
        return HDF5Source(folder / "big.h5", "x")
    zarr.create_array(folder / "big.zarr", shape=(rows,), chunks=(4096,), dtype="f8")
    return ZarrSource(folder / "big.zarr")


@pytest.mark.parametrize("kind", ["npy", "hdf5", "zarr"])
def test_memory_does_not_grow_with_the_rows_a_file_declares(kind, tmp_path):
    source = declared_files(kind, tmp_path)
    assert source.num_rows == 10**12
    stream = get_stream(pm.Minibatch(source, batch_size=256, streaming=True, prefetch=0))
    assert peak_bytes(stream.next_batch) < 8 * 2**20


def test_a_npy_header_declaring_more_data_than_the_file_holds_is_refused(tmp_path):
    with open(tmp_path / "lie.npy", "wb") as file:
        header = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        np.lib.format.write_array_header_1_0(file, header)
        file.write(bytes(800))
    with pytest.raises(
        SourceDataError,
        match=r"declares an array of shape \(1000000000000,\) and dtype float64, "
        r"8,000,000,000,000 bytes of data, but the file holds 800 after its header",
    ):
        NpySource(tmp_path / "lie.npy")


def test_an_hdf5_dataset_larger_than_its_file_is_refused_with_the_file_named(tmp_path):
    with h5py.File(tmp_path / "lie.h5", "w") as file:
        file.create_dataset("x", data=np.arange(1237.0))
    data = bytearray((tmp_path / "lie.h5").read_bytes())
    for value, claimed in [(1237, 10**9), (8 * 1237, 8 * 10**9)]:  # its shape, its storage
        packed = struct.pack("<Q", value)
        for at in [i for i in range(len(data) - 7) if data[i : i + 8] == packed]:
            data[at : at + 8] = struct.pack("<Q", claimed)
    (tmp_path / "lie.h5").write_bytes(bytes(data))
    with pytest.raises(SourceDataError, match=r"lie\.h5': its metadata cannot be read .*size"):
        HDF5Source(tmp_path / "lie.h5", "x")


def test_a_npy_file_cut_short_while_streamed_raises_instead_of_crashing(tmp_path):
    np.save(tmp_path / "X.npy", np.ones((200_000, 4)))
    done = run_child(
        f"""
        import os
        from pymc.exceptions import SourceDataError
        from pymc_extras.streaming import NpySource

        path = {str(tmp_path / "X.npy")!r}
        source = NpySource(path)
        read_rows = source._read_rows

        def cut_short(*rows):  # the file shrinks as the read starts
            os.truncate(path, 4096)
            return read_rows(*rows)

        source._read_rows = cut_short
        try:
            source.read(100_000, 150_000)
        except SourceDataError as error:
            print("SourceDataError:", error)
        """
    )
    assert done.returncode == 0, f"the reader crashed (signal {-done.returncode}): {done.stderr}"
    assert "SourceDataError:" in done.stdout
    assert "X.npy' changed while it was being streamed (size 6,400,128 → 4,096" in done.stdout


# --- directories and columns --------------------------------------------------------------------


def test_a_parquet_directory_with_a_symlink_loop_counts_each_file_once(tmp_path):
    (tmp_path / "sub").mkdir()
    pq.write_table(frame(10), tmp_path / "a.parquet")
    pq.write_table(frame(10), tmp_path / "sub" / "b.parquet")
    os.symlink("..", tmp_path / "sub" / "loop")  # sub/loop/sub/loop/... is the same folder
    os.symlink("b.parquet", tmp_path / "sub" / "same.parquet")  # one file by two names
    source = ParquetSource(tmp_path, columns=["y"])
    assert source.num_rows == 20
    assert sorted(np.concatenate([c[0] for c in source.chunks()])) == sorted([*range(10)] * 2)


def test_a_parquet_file_without_a_streamed_column_is_not_taken_for_a_partition(tmp_path):
    pq.write_table(frame(10), tmp_path / "a.parquet")
    pq.write_table(frame(10).drop_columns(["y"]), tmp_path / "b.parquet")
    with pytest.raises(
        SourceDataError,
        match=r"b\.parquet has no column 'y', which other files of the dataset have, and its "
        r"folder names do not give it",
    ):
        ParquetSource(tmp_path, columns=["x1", "y"])


def test_an_empty_parquet_directory_is_named(tmp_path):
    (tmp_path / "_SUCCESS").write_text("")
    with pytest.raises(FileNotFoundError, match=r"has no Parquet files \(names starting with"):
        ParquetSource(tmp_path)


@pytest.mark.parametrize("kind", ["parquet", "ipc"])
def test_files_of_no_rows_are_refused(kind, tmp_path):
    empty = frame(0)
    if kind == "parquet":
        pq.write_table(empty, tmp_path / "empty.parquet")
        make, match = ParquetSource, r"has no rows: its files hold 0 rows"
    else:
        feather.write_feather(empty, tmp_path / "empty.arrow")
        make, match = ArrowIPCSource, r"empty\.arrow hold no rows"
    with pytest.raises(SourceDataError, match=match):
        make(tmp_path, columns=["y"])


def test_a_csv_with_only_a_header_is_refused(tmp_path):
    (tmp_path / "header.csv").write_text("x1,x2,y\n")
    with pytest.raises(SourceDataError, match=r"header\.csv has a header and no rows"):
        CSVSource(tmp_path / "header.csv")


def test_a_csv_with_a_column_name_twice_is_refused(tmp_path):
    (tmp_path / "twice.csv").write_text("x,x,y\n1,2,3\n4,5,6\n")
    with pytest.raises(SourceDataError, match=r"header names column\(s\) 'x' more than once"):
        CSVSource(tmp_path / "twice.csv")
    source = CSVSource(tmp_path / "twice.csv", columns=["y"])  # the unique one streams
    assert source.num_rows == 2


def test_csv_num_rows_takes_numpy_integers_and_refuses_what_is_not_a_count(tmp_path):
    pacsv.write_csv(frame(), tmp_path / "data.csv")
    source = CSVSource(tmp_path / "data.csv", columns=["y"], num_rows=np.int64(N))
    assert source.num_rows == N and type(source.num_rows) is int
    with pytest.raises(ValueError, match=r"num_rows must be at least 1, got -3"):
        CSVSource(tmp_path / "data.csv", num_rows=-3)
    with pytest.raises(TypeError, match=r"num_rows must be an integer number of rows, got float"):
        CSVSource(tmp_path / "data.csv", num_rows=2.5)


# --- access to files ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", READERS)
def test_a_file_the_process_may_not_read_is_named_as_such(kind, tmp_path):
    source = write(kind, tmp_path)
    reopen = {
        "parquet": lambda: ParquetSource(tmp_path / "data.parquet"),
        "ipc": lambda: ArrowIPCSource(tmp_path / "data.arrow"),
        "csv": lambda: CSVSource(tmp_path / "data.csv"),
        "npy": lambda: NpySource(tmp_path / "X.npy"),
        "hdf5": lambda: HDF5Source(tmp_path / "data.h5", "X"),
        "zarr": lambda: ZarrSource(tmp_path / "data.zarr" / "X"),
    }[kind]
    path = {
        "parquet": "data.parquet",
        "ipc": "data.arrow",
        "csv": "data.csv",
        "npy": "X.npy",
        "hdf5": "data.h5",
        "zarr": "data.zarr/X/zarr.json",
    }[kind]
    del source  # and its open files
    gc.collect()
    with unreadable(tmp_path / path):
        with pytest.raises(PermissionError, match=r"Permission denied: this process may not read"):
            reopen()


@pytest.mark.parametrize("kind", ["parquet", "ipc", "npy"])
def test_a_file_made_unreadable_while_streamed_is_named_as_such(kind, tmp_path):
    source = write(kind, tmp_path)
    path = {"parquet": "data.parquet", "ipc": "data.arrow", "npy": "X.npy"}[kind]
    with unreadable(tmp_path / path):
        with pytest.raises(PermissionError, match=rf"may not read '.*{path}'"):
            list(source.chunks())


def test_ipc_files_are_not_held_open_so_the_open_file_limit_does_not_matter(tmp_path):
    for i in range(40):
        feather.write_feather(frame(10), tmp_path / f"part{i:02}.arrow")
    done = run_child(
        f"""
        import os, resource
        from pymc_extras.streaming import ArrowIPCSource

        folder = {str(tmp_path)!r}
        open_now = len(os.listdir("/proc/self/fd"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 10, hard))
        source = ArrowIPCSource(folder, columns=["y"])
        rows = sum(len(source.read_block(i)[0]) for i in range(len(source.block_rows)))
        print("rows", rows, "held", len(os.listdir("/proc/self/fd")) - open_now)
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now - 1, hard))
        try:
            source.read_block(0)
        except OSError as error:
            print(type(error).__name__, error)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "rows 400 held 0" in done.stdout
    assert "OSError [Errno 24] Too many open files: opening" in done.stdout


# --- resources and pickling ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", READERS)
def test_a_fitted_model_holds_no_file_open(kind, tmp_path):
    source = write(kind, tmp_path)
    model, _ = regression(source, random_seed=1, shuffle_buffer=150)
    with model:
        pm.fit(5, progressbar=False)  # stops partway through a row group, a file, a pass
    assert open_files_and_maps(tmp_path) == []
    assert not reader_threads()


@pytest.mark.parametrize("kind", [*READERS, "dask"])
def test_a_fitted_model_pickles_and_comes_back_at_its_position(kind, tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    if kind == "dask":
        da = pytest.importorskip("dask.array")
        source = pm.streaming.as_source(da.from_array(X, chunks=(100, 2)), da.from_array(IDS, 100))
    else:
        source = write(kind, tmp_path)
    model, stream = regression(source, random_seed=3, prefetch=4)
    approx = pm.fit(7, model=model, random_seed=1, progressbar=False)
    model2, approx2 = cloudpickle.loads(cloudpickle.dumps((model, approx)))
    stream2 = pm.streaming.streams_in(model2.observed_RVs)[0]
    assert stream2.get_state() == stream.get_state() and stream2 is not stream
    np.testing.assert_array_equal(approx2.mean.eval(), approx.mean.eval())
    np.testing.assert_array_equal(stream2.next_batch()[1], stream.next_batch()[1])
    pm.fit(3, model=model2, progressbar=False)
    assert not reader_threads()


def test_parquet_leaves_pyarrows_memory_pool_alone_unless_asked(tmp_path, monkeypatch):
    returned = []
    monkeypatch.setattr(arrow_files, "_return_freed_memory", lambda: returned.append(1))
    monkeypatch.setattr(arrow_files, "PARQUET_RETURN_FREED_BYTES", 1)
    pq.write_table(frame(), tmp_path / "data.parquet", row_group_size=N)
    for release, expected in [(False, False), (True, True)]:
        returned.clear()
        source = ParquetSource(
            tmp_path / "data.parquet", columns=[["x1", "x2"], "y"], release_freed_memory=release
        )
        model, _ = regression(source, shuffle_buffer=100)
        with model:
            pm.fit(10, progressbar=False)
        assert bool(returned) is expected


# --- corrupt files ------------------------------------------------------------------------------


def test_corrupt_zarr_metadata_of_a_member_is_a_source_data_error(tmp_path):
    write("zarr", tmp_path)
    (tmp_path / "data.zarr" / "y" / "zarr.json").write_bytes(b'{"zarr_format": 3, \xff\xfe')
    with pytest.raises(SourceDataError, match=r"data\.zarr': its metadata cannot be read"):
        ZarrSource(tmp_path / "data.zarr", "X", "y")
    (tmp_path / "data.zarr" / "y" / "zarr.json").write_text('{"zarr_format": 3, "node_type"')
    with pytest.raises(SourceDataError, match=r"its metadata cannot be read \(JSONDecodeError"):
        ZarrSource(tmp_path / "data.zarr", "X", "y")


FUZZ = """
import json, os, random, shutil, sys, warnings
import numpy as np
import pyarrow as pa, pyarrow.csv as pacsv, pyarrow.feather as feather, pyarrow.parquet as pq
import h5py, zarr
from pymc.exceptions import InvalidSourceError, SourceDataError
from pymc_extras.streaming import (
    ArrowIPCSource, CSVSource, HDF5Source, NpySource, ParquetSource, ZarrSource
)

warnings.simplefilter("ignore")
folder, rounds = sys.argv[1], int(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
X = np.random.default_rng(0).normal(size=(3000, 3))
table = pa.table({"a": X[:, 0], "b": X[:, 1], "y": np.arange(3000.0)})
ALLOWED = (SourceDataError, InvalidSourceError, FileNotFoundError, PermissionError)


def write(kind, path):
    if kind == "hdf5":
        with h5py.File(path, "w") as file:
            file.create_dataset("X", data=X, chunks=(500, 3), compression="gzip")
            file.create_dataset("y", data=X[:, 2], chunks=(500,))
    elif kind == "zarr":
        group = zarr.open_group(path, mode="w")
        group.create_array("X", shape=X.shape, chunks=(500, 3), dtype="f8")[:] = X
        group.create_array("y", shape=(3000,), chunks=(500,), dtype="f8")[:] = X[:, 2]
    elif kind == "npy":
        np.save(path, X)
    elif kind == "parquet":
        pq.write_table(table, path, row_group_size=700)
    elif kind == "ipc":
        compression = rng.choice(["uncompressed", "lz4", "zstd"])
        feather.write_feather(table, path, chunksize=700, compression=compression)
    else:
        pacsv.write_csv(table, path)


def corrupt(path):
    files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs] or [path]
    victim = rng.choice(files)
    data = bytearray(open(victim, "rb").read())
    how = rng.choice(["flip", "truncate", "zero", "garbage"])
    if how == "truncate":
        data = data[: rng.randrange(len(data) or 1)]
    for _ in range(rng.randint(1, 8)):
        if how == "truncate" or not data:
            break
        at, width = rng.randrange(len(data)), rng.randint(1, 16)
        for i in range(at, min(at + width, len(data))):
            data[i] = {"flip": data[i] ^ (1 << rng.randrange(8)), "zero": 0}.get(
                how, rng.randrange(256)
            )
    open(victim, "wb").write(bytes(data))


OPEN = {
    "hdf5": lambda p: HDF5Source(p, "X", "y"),
    "zarr": lambda p: ZarrSource(p, "X", "y"),
    "npy": lambda p: NpySource(p),
    "parquet": lambda p: ParquetSource(p, columns=[["a", "b"], "y"]),
    "ipc": lambda p: ArrowIPCSource(p, columns=[["a", "b"], "y"]),
    "csv": lambda p: CSVSource(p, columns=[["a", "b"], "y"]),
}
raw = {}
for kind, opener in OPEN.items():
    for i in range(rounds):
        path = os.path.join(folder, f"{kind}{i}.{kind}")
        write(kind, path)
        corrupt(path)
        try:
            source = opener(path)
            for chunk in source.chunks():
                pass
            for i in range(len(getattr(source, "block_rows", ()))):
                source.read_block(i)
        except ALLOWED:
            pass
        except Exception as error:
            raw.setdefault(kind, []).append(f"{type(error).__name__}: {error}"[:200])
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
print(json.dumps(raw))
"""


def test_randomly_corrupted_files_fail_only_with_the_readers_errors(tmp_path):
    """Bytes flipped, zeroed, overwritten or cut off: a clear error or a read, never a crash."""
    script = tmp_path / "fuzz.py"
    script.write_text(FUZZ)
    (tmp_path / "files").mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "files"), "60", "12"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"crashed (signal {-done.returncode}): {done.stderr[-2000:]}"
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}
