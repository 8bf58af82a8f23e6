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
"""The workflow's outputs, attacked: links, shared folders, failed passes, lying sizes."""

import errno
import io
import tracemalloc

import arviz as az
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pymc as pm
import pytest

from pymc.exceptions import SourceDataError

from pymc_extras.streaming import ParquetSource
from pymc_extras.streaming.workflow import pointwise, row_outputs
from pymc_extras.streaming.workflow.loo import LOO_FILES, loo_subsample
from pymc_extras.streaming.workflow.predictive_passes import ppc_summary, predict_to_file
from tests.streaming.full_data_models import Chunked
from tests.streaming.workflow_models import COORDS, posterior, simulate, streaming_linear

DATA = simulate(3_000, seed=5)
COLUMNS = {"x1": DATA.X[:, 0], "x2": DATA.X[:, 1], "x3": DATA.X[:, 2], "y": DATA.y}


@pytest.fixture(scope="module")
def idata():
    return posterior(DATA, draws=20)


@pytest.fixture(scope="module")
def loo_idata():
    """Enough draws for PSIS to fit its tails without a warning."""
    return posterior(DATA, draws=250)


@pytest.fixture(scope="module")
def model():
    return streaming_linear(DATA.X, DATA.y)


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


# Each workflow output: (writer, name of its output in a folder of its own). The writer takes
# the posterior, the model, the output's path, the new data (for predictions) and options.
OUTPUTS = {
    "predict-parquet": (
        lambda i, m, path, new=DATA.X, **kw: predict_to_file(i, new, path, m, **kw),
        "out.parquet",
    ),
    "predict-zarr": (
        lambda i, m, path, new=DATA.X, **kw: predict_to_file(i, new, path, m, **kw),
        "out.zarr",
    ),
    "ppc-parquet": (
        lambda i, m, path, new=None, **kw: ppc_summary(i, m, path=path, **kw),
        "out.parquet",
    ),
    "loo-pointwise": (
        lambda i, m, path, new=None, **kw: loo_subsample(
            i, m, observations=100, pointwise_dir=path.parent, **kw
        ),
        LOO_FILES[1],
    ),
}


@pytest.mark.parametrize("overwrite", [False, True], ids=["keep", "overwrite"])
@pytest.mark.parametrize("dangling", [False, True], ids=["link", "dangling-link"])
@pytest.mark.parametrize("output", OUTPUTS)
def test_no_output_is_written_through_a_link(idata, model, tmp_path, output, dangling, overwrite):
    write, name = OUTPUTS[output]
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    victim = elsewhere / "victim"
    if not dangling:
        if name.endswith(".zarr"):  # a store elsewhere, which a link would let it write into
            victim.mkdir()
            (victim / "zarr.json").write_text("precious")
        else:
            victim.write_bytes(b"precious")
    (out / name).symlink_to(victim)
    with pytest.raises(FileExistsError, match="symbolic link"):
        write(idata, model, out / name, overwrite=overwrite)
    if dangling:
        assert listing(elsewhere) == []
    elif victim.is_dir():
        assert listing(victim) == ["zarr.json"]
        assert (victim / "zarr.json").read_text() == "precious"
    else:
        assert victim.read_bytes() == b"precious"
    assert listing(out) == [name]


def test_overwrite_leaves_a_folder_that_is_not_a_store(idata, model, tmp_path):
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a Zarr store"):
        predict_to_file(idata, DATA.X, folder, model, overwrite=True)
    assert listing(folder) == ["notes.txt"]


def test_loo_replaces_another_result_only_when_asked(loo_idata, model, tmp_path):
    idata = loo_idata
    loo_subsample(idata, model, observations=100, seed=1, pointwise_dir=tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in LOO_FILES}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        loo_subsample(idata, model, observations=100, seed=2, pointwise_dir=tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in LOO_FILES} == before
    loo_subsample(idata, model, observations=100, seed=2, pointwise_dir=tmp_path, overwrite=True)
    assert {name: (tmp_path / name).read_bytes() for name in LOO_FILES} != before
    assert listing(tmp_path) == sorted(LOO_FILES)


def test_a_later_loo_in_the_same_folder_leaves_an_earlier_result_as_it_was(
    loo_idata, model, tmp_path
):
    """The documented comparison of two models, with both results' vectors in one folder."""
    idata = loo_idata
    with pm.Model(coords=COORDS) as smaller:
        X_mb, y_mb = pm.Minibatch(DATA.X, DATA.y, batch_size=256, streaming=True)
        beta = pm.Normal("beta", 0, 2, dims="feature")
        pm.Normal("y", X_mb @ beta, pm.HalfNormal("sigma", 2), observed=y_mb)
    post = idata.posterior.to_dataset().drop_vars("intercept")
    small_idata = az.from_dict(
        {"posterior": {name: value.values for name, value in post.items()}},
        dims={"beta": ["feature"]},
        coords=COORDS,
    )
    full = loo_subsample(idata, model, observations=300, seed=9, pointwise_dir=tmp_path)
    kept = {name: np.array(getattr(full, name)) for name in ("elpd_i", "elpd_loo_approx")}
    small = loo_subsample(
        small_idata, smaller, observations=300, seed=9, pointwise_dir=tmp_path, overwrite=True
    )
    for name, values in kept.items():
        np.testing.assert_array_equal(getattr(full, name), values)
    assert not np.array_equal(full.elpd_loo_approx, small.elpd_loo_approx)
    table = az.compare({"full": full, "no intercept": small})
    assert table.loc["no intercept", "elpd_diff"] < -4 * table.loc["no intercept", "dse"]


def _parquet_model(folder):
    """The regression streamed from a Parquet file of 30 row groups, and that file."""
    path = folder / "train.parquet"
    pq.write_table(pa.table(COLUMNS), path, row_group_size=100)
    source = ParquetSource(path, columns=[["x1", "x2", "x3"], "y"])
    return streaming_linear(source), path


def _delete_on_first_evaluation(monkeypatch, path):
    """Remove ``path`` when the pass first evaluates the model: the pass has rows left to read."""
    for kind in (pointwise.ChunkPredictive, pointwise.ChunkLogLikelihood):
        evaluate = kind.__call__

        def deleting(self, *args, _evaluate=evaluate, **kwargs):
            path.unlink(missing_ok=True)
            return _evaluate(self, *args, **kwargs)

        monkeypatch.setattr(kind, "__call__", deleting)


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_data_file_deleted_during_the_pass_leaves_no_output(idata, tmp_path, monkeypatch, output):
    write, name = OUTPUTS[output]
    model, data = _parquet_model(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    new = ParquetSource(data, columns=[["x1", "x2", "x3"]])
    _delete_on_first_evaluation(monkeypatch, data)
    # The readers say the file went away (or changed); the pass leaves nothing behind.
    with pytest.raises((SourceDataError, OSError), match=r"train\.parquet"):
        write(idata, model, out / name, new=new)
    assert listing(out) == []


class _FullDisk(io.RawIOBase):
    """A file that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, file, room):
        self._file, self._room = file, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._file.write(data)

    def close(self):
        self._file.close()
        super().close()


@pytest.mark.parametrize("output", ["predict-parquet", "ppc-parquet", "predict-zarr"])
def test_a_full_disk_is_the_error_and_leaves_no_output(idata, model, tmp_path, monkeypatch, output):
    write, name = OUTPUTS[output]
    out = tmp_path / "out"
    out.mkdir()
    # Several row groups (or Zarr appends), so that the disk fills in the middle of the pass.
    monkeypatch.setattr(row_outputs, "PARQUET_ROW_GROUP_ROWS", 500)
    monkeypatch.setattr(row_outputs, "ZARR_FLUSH_BYTES", 1 << 16)
    if name.endswith(".parquet"):
        init = pq.ParquetWriter.__init__

        def on_a_small_disk(self, where, *args, **kwargs):
            file = open(where, "wb") if isinstance(where, str | bytes | type(out)) else where
            init(self, _FullDisk(file, 20_000), *args, **kwargs)

        monkeypatch.setattr(pq.ParquetWriter, "__init__", on_a_small_disk)
    else:
        from zarr.storage import _local

        put, calls = _local._put, []

        def on_a_small_disk(path, value, *args, **kwargs):
            calls.append(path)
            if len(calls) > 12:
                raise OSError(errno.ENOSPC, "No space left on device")
            return put(path, value, *args, **kwargs)

        monkeypatch.setattr(_local, "_put", on_a_small_disk)
    with pytest.raises(OSError, match="No space left") as raised:
        write(idata, model, out / name)
    assert raised.value.errno == errno.ENOSPC
    assert listing(out) == []


@pytest.mark.parametrize("name", ["out.parquet", "out.zarr"])
def test_no_rows_write_no_output(idata, model, tmp_path, name):
    with pytest.raises(SourceDataError, match="read no rows"):
        predict_to_file(idata, DATA.X[:0], tmp_path / name, model)
    assert listing(tmp_path) == []


def test_ppc_summary_names_the_observation_that_is_nan(idata, tmp_path):
    y = DATA.y.copy()
    y[2_345] = np.nan
    with pytest.raises(SourceDataError, match=r"observations of 'y' hold NaN or inf at row 2345"):
        ppc_summary(idata, streaming_linear(DATA.X, y), path=tmp_path / "c.parquet")
    assert listing(tmp_path) == []


def test_ppc_summary_names_the_draws_that_are_nan(model):
    idata = posterior(DATA, draws=20)
    idata.posterior["sigma"][0, 3] = np.nan
    with pytest.raises(ValueError, match=r"predictive draws of 'y' hold NaN or inf at rows \[0"):
        ppc_summary(idata, model)


@pytest.mark.parametrize("folder", [False, True], ids=["in-memory", "pointwise_dir"])
@pytest.mark.parametrize(
    "declared, match",
    [
        # As a crafted Parquet footer declares: 24 bytes a row would be 21 TiB.
        (10**12, "yielded 3000 rows, but says it has 1000000000000"),
        (2_000, "yields more rows than the 2000 it says it has"),
    ],
    ids=["more-than-it-holds", "fewer-than-it-holds"],
)
def test_loo_allocates_nothing_from_the_rows_a_source_declares(
    idata, tmp_path, folder, declared, match
):
    source = Chunked(DATA.X, DATA.y)
    source.num_rows = declared
    source.cuts = list(range(500, 3_000, 500))
    model = streaming_linear(source)
    with pytest.raises(SourceDataError, match=match):
        loo_subsample(idata, model, observations=100, pointwise_dir=tmp_path if folder else None)
    assert listing(tmp_path) == []


def _loo_peak_bytes(rows: int, idata) -> int:
    """The peak of memory allocated by a LOO with per-row vectors, over data of ``rows`` rows."""
    data = simulate(rows, seed=3)
    model = streaming_linear(data.X, data.y)
    tracemalloc.start()
    try:
        result = loo_subsample(idata, model, observations=100, seed=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.elpd_i.shape == (rows,)
    assert np.isfinite(result.elpd_i.values).sum() == 100
    return peak


def test_loo_memory_does_not_grow_with_the_rows():
    """24 bytes a row go to files, whose pages are the system's cache, not the process's."""
    idata = posterior(simulate(1_000, seed=3), draws=100)
    small = _loo_peak_bytes(500_000, idata)  # also compiles, and imports what it needs
    large = _loo_peak_bytes(4_000_000, idata)
    # 3,500,000 more rows: 84 MB more if the vectors were held in memory.
    assert large - small < 4 * 2**20
