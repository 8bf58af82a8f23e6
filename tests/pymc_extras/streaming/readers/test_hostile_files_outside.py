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
"""Files that point elsewhere: a source reads the path it was given, and nothing else."""

import os
import pickle

import numpy as np
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError
from pymc.streaming import get_stream

from pymc_extras.streaming import HDF5Source, ZarrSource

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

SECRET = np.arange(100.0) * 7  # the bytes of a file the process may read, but was not given


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "elsewhere" / "secret.bin"
    path.parent.mkdir()
    SECRET.tofile(path)
    return path


def other_hdf5(tmp_path):
    path = tmp_path / "elsewhere" / "other.h5"
    path.parent.mkdir(exist_ok=True)
    with h5py.File(path, "w") as file:
        file["y"] = SECRET
    return path


# --- HDF5 ---------------------------------------------------------------------------------------


def test_hdf5_external_storage_is_refused_naming_the_file_it_points_to(tmp_path, secret):
    with h5py.File(tmp_path / "crafted.h5", "w") as file:
        file.create_dataset("x", shape=(100,), dtype="f8", external=[(str(secret), 0, 800)])
    with pytest.raises(
        SourceDataError,
        match=r"Dataset '/x' of '.*crafted\.h5' keeps its data in other files \(HDF5 external "
        r"storage\): '.*secret\.bin'\. .* allow_external=True",
    ):
        HDF5Source(tmp_path / "crafted.h5", "x")
    with h5py.File(tmp_path / "crafted.h5", "r") as file:  # as an object, and by pm.Minibatch
        with pytest.raises(SourceDataError, match=r"HDF5 external storage"):
            pm.Minibatch(file["x"], batch_size=10, streaming=True)
    source = HDF5Source(tmp_path / "crafted.h5", "x", allow_external=True)  # when trusted
    np.testing.assert_array_equal(source.read(0, 100)[0], SECRET)


@pytest.mark.parametrize("name", ["x", "group/y"], ids=["dataset", "group"])
def test_an_hdf5_external_link_is_refused_naming_the_file_it_leads_to(name, tmp_path):
    other = other_hdf5(tmp_path)
    with h5py.File(tmp_path / "crafted.h5", "w") as file:
        file["x"] = h5py.ExternalLink(str(other), "/y")
        file["group"] = h5py.ExternalLink(str(other), "/")
    with pytest.raises(
        SourceDataError,
        match=rf"Dataset '{name}' of '.*crafted\.h5' is reached through an external link: its "
        r"data is dataset '/y' of another file, '.*other\.h5'",
    ):
        HDF5Source(tmp_path / "crafted.h5", name)
    source = HDF5Source(tmp_path / "crafted.h5", name, allow_external=True)
    np.testing.assert_array_equal(source.read(0, 100)[0], SECRET)
    copy = pickle.loads(pickle.dumps(source))  # the keyword survives a copy
    np.testing.assert_array_equal(copy.read(0, 5)[0], SECRET[:5])


def test_an_hdf5_virtual_dataset_of_another_file_is_refused_and_of_its_own_file_read(tmp_path):
    other = other_hdf5(tmp_path)
    layout = h5py.VirtualLayout(shape=(100,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(other), "y", shape=(100,))
    with h5py.File(tmp_path / "crafted.h5", "w") as file:
        file.create_virtual_dataset("x", layout)
    with pytest.raises(
        SourceDataError,
        match=r"Dataset '/x' of '.*crafted\.h5' is a virtual dataset that maps data of other "
        r"files: '.*other\.h5'",
    ):
        HDF5Source(tmp_path / "crafted.h5", "x")
    np.testing.assert_array_equal(
        HDF5Source(tmp_path / "crafted.h5", "x", allow_external=True).read(0, 100)[0], SECRET
    )
    own = h5py.VirtualLayout(shape=(100,), dtype="f8")  # a view of data in its own file
    own[:] = h5py.VirtualSource(".", "y", shape=(100,))
    with h5py.File(tmp_path / "own.h5", "w") as file:
        file["y"] = np.arange(100.0)
        file.create_virtual_dataset("x", own)
    np.testing.assert_array_equal(
        HDF5Source(tmp_path / "own.h5", "x").read(0, 100)[0], np.arange(100.0)
    )


# --- Zarr ---------------------------------------------------------------------------------------


def zarr_store(path):
    """200 rows in two chunks of 100 float64, uncompressed: a chunk is the size of SECRET."""
    array = zarr.create_array(path, shape=(200,), chunks=(100,), dtype="f8", compressors=None)
    array[:] = np.arange(200.0)
    return path


def test_a_zarr_chunk_linked_outside_the_store_is_refused_when_read(tmp_path, secret):
    store = zarr_store(tmp_path / "crafted.zarr")
    os.remove(store / "c" / "1")
    os.symlink(secret, store / "c" / "1")  # the second chunk is the bytes of another file
    source = ZarrSource(store)
    np.testing.assert_array_equal(source.read(0, 100)[0], np.arange(100.0))
    message = (
        r"'c/1' of the Zarr store '.*crafted\.zarr' is a symbolic link to '.*secret\.bin', "
        r"outside the store\. .* allow_external=True"
    )
    with pytest.raises(SourceDataError, match=message):
        source.read(100, 200)
    stream = get_stream(pm.Minibatch(source, batch_size=10, streaming=True, prefetch=0))
    with pytest.raises(SourceDataError, match=message):
        for _ in range(20):
            stream.next_batch()
    copy = pickle.loads(pickle.dumps(source))  # a copy is confined too
    with pytest.raises(SourceDataError, match=message):
        copy.read(100, 200)
    trusted = ZarrSource(store, allow_external=True)
    np.testing.assert_array_equal(trusted.read(100, 200)[0], SECRET)


def test_zarr_objects_and_stores_given_open_are_confined_too(tmp_path, secret):
    store = zarr_store(tmp_path / "crafted.zarr")
    os.remove(store / "c" / "1")
    os.symlink(secret, store / "c" / "1")
    for given in [zarr.open_array(store, mode="r"), zarr.storage.LocalStore(store)]:
        with pytest.raises(SourceDataError, match=r"'c/1' .* is a symbolic link to"):
            ZarrSource(given).read(100, 200)
    group = zarr.open_group(tmp_path / "group.zarr", mode="w")
    group.create_array("x", shape=(100,), chunks=(50,), dtype="f8", compressors=None)[:] = 1.0
    os.remove(tmp_path / "group.zarr" / "x" / "c" / "0")
    os.symlink(secret, tmp_path / "group.zarr" / "x" / "c" / "0")
    with pytest.raises(SourceDataError, match=r"'x/c/0' .* is a symbolic link to"):
        ZarrSource(zarr.open_group(tmp_path / "group.zarr", mode="r"), "x").read(0, 50)


def test_zarr_metadata_linked_outside_the_store_is_refused_and_links_inside_are_read(
    tmp_path, secret
):
    store = zarr_store(tmp_path / "crafted.zarr")
    elsewhere = secret.parent / "zarr.json"
    os.replace(store / "zarr.json", elsewhere)
    os.symlink(elsewhere, store / "zarr.json")
    with pytest.raises(SourceDataError, match=r"'zarr\.json' of the Zarr store .* outside"):
        ZarrSource(store)
    inside = zarr_store(tmp_path / "inside.zarr")
    os.replace(inside / "c" / "1", inside / "chunk-copy")
    os.symlink(inside / "chunk-copy", inside / "c" / "1")  # a link that stays in the store
    np.testing.assert_array_equal(ZarrSource(inside).read(0, 200)[0], np.arange(200.0))
