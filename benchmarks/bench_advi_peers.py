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
"""Streaming ADVI against its peers: steps/s, one epoch with compilation, reading, memory.

Run ``.venv/bin/python benchmarks/bench_advi_peers.py`` (about 35 minutes on 2 cores, plus a
minute the first time to write the data; ``--quick`` for a smoke run on 200,000 rows). It prints
one JSON object on stdout. NumPyro is optional (``pip install numpyro``, or the ``bench``
dependency group of the repository's pyproject.toml): without it, its rows are skipped with a
note. For shorter runs, ``--rows`` sets the dataset's size (e.g. 2,000,000), ``--systems`` the
systems and ``--parts`` what is measured (``steps``, ``epoch``, ``reader``).

The model: logistic regression, 10 float64 features and an intercept, mean-field ADVI, Adam with
learning rate 0.01, float64, batches of 256 and 1,024 rows. The data: 10 million rows written
once to ``benchmarks/data/logistic_10M.parquet`` (0.9 GB), and the same rows as ``.npy`` arrays
for the systems that hold them in memory. Every measurement runs in a fresh process, and the
repetitions interleave the systems, so a burst of load on the shared machine hits them alike;
the figures are medians, and the ratios are of medians.

Systems
    ``stream_parquet``: ``pm.Minibatch(ParquetSource(...), streaming=True)`` and ``pm.fit``, all
    defaults (many steps per call, a background reader). ``stream_arrays``: the same from the
    arrays in memory. ``stream_parquet_one_step``: Parquet with ``steps_per_call=1``, the fork
    before this benchmark's work. ``pymc_minibatch``: PyMC's in-memory ``pm.Minibatch`` (random
    rows each step) and ``pm.fit``. ``numpyro``: NumPyro's SVI (``AutoNormal``, ``Adam(0.01)``,
    ``Trace_ELBO``) on the arrays in memory, each step's rows drawn by one ``randint`` inside the
    compiled step (PyMC's in-memory ``pm.Minibatch`` draws its rows the same way; NumPyro's
    ``plate(subsample_size=...)`` runs a partial shuffle that is two orders of magnitude slower
    on CPU), ``svi.update`` scanned with ``lax.scan`` under ``jax.jit``: NumPyro's own compiled
    loop, which ``svi.run`` also is, except that ``svi.run`` traces and compiles again at every
    call. ``stream_dask_cluster``: the same file as a Dask DataFrame (``read_parquet`` with one
    partition per row group) streamed by ``DaskSource`` from a two-worker ``LocalCluster`` (a
    process and a thread each) on the same machine. Named in ``--systems`` only:
    ``stream_dask``, the same source computed by Dask's threads in the fitting process, and
    ``stream_parquet_holding_gil``, the Parquet stream with its compiled block holding the GIL,
    as before block functions released it (``pymc.variational.nogil``).

Figures
    ``steps_per_s``: steps timed after a warm-up, compilation excluded, per system and batch
    size, and the ratios the issue asks about: streaming ÷ in-memory ``pm.Minibatch`` (goal
    ≥ 1.5), ÷ NumPyro (≥ 1.0), Parquet ÷ arrays (≥ 0.9), Dask cluster ÷ Parquet in one process
    (≥ 0.8). Reading overlaps the compiled steps only where a second core is free: on a machine
    busy with other work the ratios of systems that read fall. ``epoch``: the wall time of one
    10M-row epoch at batch 1,024 (9,765 steps), from building the model to the fit's return,
    compilation included (loading the arrays of the in-memory systems is reported apart), and
    each process's peak RSS. ``reader``: rows per second of our Parquet reader delivering
    shuffled blocks of batches of 256 (what a fit consumes), against a raw multithreaded
    ``pyarrow.dataset`` scan producing the same end product, the features as a row-major
    float64 matrix and the outcome as a vector (``np.column_stack`` of each record batch's
    columns, faster here than ``Table.to_tensor(row_major=True)``); each reader's second pass
    over the file, in a process of its own; goal ≥ 0.8. Our reader decodes in one thread (to
    leave the other cores to the fit), so the same scan with ``use_threads=False`` is reported
    too: both then decode in one thread (the scan's in pyarrow's I/O thread, ours in a thread
    that reads the next window) while another thread makes the arrays (the scan's caller; our
    stream's reader thread, which also shuffles and cuts the batches).
"""

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import time

from pathlib import Path

import numpy as np

from benchlib import machine
from datasets import FEATURES, regression_parquet

_DATA = Path(__file__).parent / "data"
_COLUMNS = [[f"x{j}" for j in range(FEATURES)], "y"]
SYSTEMS = (
    "stream_parquet",
    "stream_arrays",
    "stream_parquet_one_step",
    "stream_dask_cluster",
    "pymc_minibatch",
    "numpyro",
)
OPT_IN = ("stream_parquet_holding_gil", "stream_dask")
"""Measured only when named in ``--systems``: the Parquet stream with its compiled block holding
Python's GIL for the whole call, as before the block functions released it; and the Dask source
computed by Dask's default (threaded) scheduler in the fitting process."""
BATCHES = (256, 1_024)
PARTS = ("steps", "epoch", "reader")


def _peak_rss_mb() -> float:
    """Peak RSS of this process (``VmHWM``, which starts afresh at exec; ``ru_maxrss`` does not)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The dataset as arrays in memory: X (rows, 10) float64 and y (rows,) int64."""
    npy = path.with_suffix(".X.npy"), path.with_suffix(".y.npy")
    if not all(file.exists() for file in npy):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        X = np.column_stack([table.column(name).to_numpy() for name in _COLUMNS[0]])
        np.save(npy[0], X)
        np.save(npy[1], table.column("y").to_numpy())
        del table, X
    return np.load(npy[0]), np.load(npy[1])


# --- one measurement, in a fresh process -----------------------------------------------------


def _pymc_fit(system: str, path: Path, batch_size: int, steps: int, marks: dict) -> dict:
    import pymc as pm

    from pymc_extras.streaming import ParquetSource

    load_s = 0.0
    if system in ("stream_arrays", "pymc_minibatch"):
        load_s = -time.perf_counter()
        X, y = _arrays(path)
        load_s += time.perf_counter()
    began = time.perf_counter()
    with pm.Model() as model:
        if system == "pymc_minibatch":
            # int32 outcomes: PyMC refuses an observed Minibatch it would have to cast.
            X_mb, y_mb = pm.Minibatch(X, y.astype(np.int32), batch_size=batch_size)
            total_size = len(y)
        else:
            if "parquet" in system:
                sources = [ParquetSource(path, columns=_COLUMNS)]
            elif "dask" in system:
                sources = [_dask_source(path)]
            else:
                sources = [X, y]
            X_mb, y_mb = pm.Minibatch(*sources, batch_size=batch_size, streaming=True)
            total_size = None
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        pm.Bernoulli("y", logit_p=intercept + X_mb @ beta, observed=y_mb, total_size=total_size)

    def clock(approx, losses, i):
        marks[i] = time.perf_counter()

    options = {"steps_per_call": 1} if system.endswith("one_step") else {}
    if system.endswith("holding_gil"):
        from pymc.variational import blocks

        blocks.release_gil = lambda mode: mode
    with model:
        pm.fit(
            steps,
            obj_optimizer=pm.adam(learning_rate=0.01),
            callbacks=[clock],
            progressbar=False,
            random_seed=1,
            **options,
        )
    return {"began": began, "load_s": load_s}


def _dask_source(path: Path):
    """The Parquet file as a Dask DataFrame, one partition per row group (1,048,576 rows)."""
    import dask.dataframe as dd

    from pymc_extras.streaming import DaskSource

    frame = dd.read_parquet(str(path), columns=[*_COLUMNS[0], _COLUMNS[1]], split_row_groups=True)
    return DaskSource(frame, columns=_COLUMNS)


def _cluster(system: str):
    """A two-worker ``LocalCluster`` (a process and a thread each) for ``stream_dask_cluster``."""
    if system != "stream_dask_cluster":
        return contextlib.nullcontext()
    from distributed import Client, LocalCluster

    stack = contextlib.ExitStack()
    cluster = stack.enter_context(
        LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    )
    stack.enter_context(Client(cluster))
    return stack


def _numpyro_fit(path: Path, batch_size: int, steps: int, marks: dict, chunk: int) -> dict:
    import jax
    import numpyro
    import numpyro.distributions as dist

    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    numpyro.enable_x64()
    load_s = -time.perf_counter()
    X_np, y_np = _arrays(path)
    load_s += time.perf_counter()
    began = time.perf_counter()
    X, y = jax.numpy.asarray(X_np), jax.numpy.asarray(y_np)
    del X_np, y_np
    n = X.shape[0]

    def model(X, y):
        intercept = numpyro.sample("intercept", dist.Normal(0, 5))
        beta = numpyro.sample("beta", dist.Normal(0, 5).expand([FEATURES]).to_event(1))
        rows = jax.random.randint(numpyro.prng_key(), (batch_size,), 0, n)
        with numpyro.plate("data", n, subsample_size=batch_size):
            with numpyro.handlers.substitute(data={"data": rows}):
                numpyro.sample("y", dist.Bernoulli(logits=intercept + X[rows] @ beta), obs=y[rows])

    svi = SVI(model, AutoNormal(model), numpyro.optim.Adam(0.01), Trace_ELBO())

    @jax.jit
    def run(state, X, y):
        return jax.lax.scan(lambda s, _: svi.update(s, X, y), state, None, length=chunk)

    state = svi.init(jax.random.key(1), X, y)
    done = 0
    while done < steps:
        state, losses = run(state, X, y)
        losses.block_until_ready()
        done += chunk
        marks[done] = time.perf_counter()
    return {"began": began, "load_s": load_s, "numpyro": numpyro.__version__}


def child_steps(system: str, path: str, batch_size: int, warmup: int, steps: int) -> None:
    """Steps/s of one system after ``warmup`` steps, compilation excluded; prints JSON."""
    marks: dict[int, float] = {}
    if system == "numpyro":
        chunk = 256
        info = _numpyro_fit(Path(path), batch_size, warmup + steps, marks, chunk)
    else:
        with _cluster(system):
            info = _pymc_fit(system, Path(path), batch_size, warmup + steps, marks)
    last = max(marks)
    rate = (last - warmup) / (marks[last] - marks[warmup])
    json.dump({"steps_per_s": rate, "peak_rss_mb": _peak_rss_mb(), **info}, sys.stdout)


def child_epoch(system: str, path: str, batch_size: int) -> None:
    """One epoch's steps, from building the model to the end, compilation included."""
    steps = _rows_of(Path(path)) // batch_size
    marks: dict[int, float] = {}
    if system == "numpyro":
        info = _numpyro_fit(Path(path), batch_size, steps, marks, chunk=steps)
    else:
        with _cluster(system):
            info = _pymc_fit(system, Path(path), batch_size, steps, marks)
    seconds = marks[max(marks)] - info.pop("began")
    result = {"epoch_s": seconds, "steps": steps, "peak_rss_mb": _peak_rss_mb(), **info}
    json.dump(result, sys.stdout)


def child_reader(kind: str, path: str) -> None:
    """Rows/s of one reader's second pass over the file, to row-major float64; prints JSON.

    The end product of both: the 10 features as a C-contiguous (rows, 10) float64 matrix, and
    the outcome as a vector. Ours also shuffles, and cuts the rows into blocks of batches.
    """
    if kind.startswith("raw_scan"):
        import pyarrow.dataset as ds

        columns = [*_COLUMNS[0], _COLUMNS[1]]
        threads = kind == "raw_scan"  # pyarrow's default; "raw_scan_one_thread" as our reader

        def one_pass() -> int:
            rows = 0
            for batch in ds.dataset(path).to_batches(columns=columns, use_threads=threads):
                X = np.column_stack([batch.column(j).to_numpy() for j in range(FEATURES)])
                y = batch.column(FEATURES).to_numpy()
                rows += min(len(X), len(y))
            return rows

    else:
        import pytensor

        import pymc as pm

        from pymc_extras.streaming import ParquetSource

        X_mb, _ = pm.Minibatch(
            ParquetSource(path, columns=_COLUMNS), batch_size=256, streaming=True, random_seed=1
        )
        stream = pm.streaming.get_stream(X_mb)
        # What a fit's block function reads: blocks of 256 batches of 256 rows, as "auto" picks.
        blocks = {buffer: pytensor.shared(buffer.get_value()[None]) for buffer in stream.buffers}
        steps = stream.num_rows // 256

        def one_pass() -> int:
            stream.expect_blocks(256)
            stream.start(restart=True, random_seed=1)
            try:
                done = 0
                while done < steps:
                    done += stream.before_block(min(256, steps - done), blocks)
            finally:
                stream.stop()
            return done * 256

    one_pass()
    started = time.perf_counter()
    rows = one_pass()
    json.dump({"rows_per_s": rows / (time.perf_counter() - started)}, sys.stdout)


def _rows_of(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# --- the driver ------------------------------------------------------------------------------


def _run(*args: str) -> dict:
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has_numpyro() -> bool:
    import importlib.util

    return importlib.util.find_spec("numpyro") is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows, one repetition")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--rows", type=int, help="rows of the dataset (default: 10,000,000)")
    parser.add_argument(
        "--systems",
        nargs="+",
        choices=SYSTEMS + OPT_IN,
        help="the systems to measure (default: all but stream_parquet_holding_gil)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="what to measure (default: all)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"steps": child_steps, "epoch": child_epoch, "reader": child_reader}[kind](
            *[int(a) if a.isdigit() else a for a in rest]
        )
        return

    rows = args.rows or (200_000 if args.quick else 10_000_000)
    repetitions = 1 if args.quick else args.repetitions
    _DATA.mkdir(exist_ok=True)
    path = _DATA / f"logistic_{rows // 1_000_000 or rows}{'M' if rows >= 1e6 else ''}.parquet"
    regression_parquet(path, rows, kind="logistic")
    # The arrays, written once before any timing, in a process of its own: the driver stays
    # small, and its children, which it forks, start small.
    subprocess.run(
        [sys.executable, "-c", f"import bench_advi_peers as b; b._arrays(b.Path({str(path)!r}))"],
        check=True,
        cwd=Path(__file__).parent,
    )
    systems = [s for s in args.systems or SYSTEMS if s != "numpyro" or _has_numpyro()]
    notes = [] if "numpyro" in systems else ["numpyro is not installed: its rows are skipped"]
    # Steps per system: enough for two seconds or so of the fastest and slowest systems.
    plan = {
        256: {"fast": (2_048, 40_960), "slow": (512, 6_144)},
        1_024: {"fast": (1_024, 16_384), "slow": (256, 3_072)},
    }
    if args.quick:
        plan = {b: {"fast": (256, 2_048), "slow": (256, 512)} for b in BATCHES}
    slow = {"stream_parquet_one_step", "pymc_minibatch"}
    load = [os.getloadavg()]
    steps: dict[str, dict[int, list[float]]] = {s: {b: [] for b in BATCHES} for s in systems}
    epochs: dict[str, list[dict]] = {s: [] for s in systems if s != "stream_parquet_one_step"}
    readers: dict[str, list[float]] = {"stream": [], "raw_scan": [], "raw_scan_one_thread": []}
    for repetition in range(repetitions):
        order = systems[repetition % len(systems) :] + systems[: repetition % len(systems)]
        for batch in BATCHES if "steps" in args.parts else ():
            for system in order:
                warmup, count = plan[batch]["slow" if system in slow else "fast"]
                got = _run(
                    "--child", "steps", system, str(path), str(batch), str(warmup), str(count)
                )
                steps[system][batch].append(got["steps_per_s"])
        for system in order if "epoch" in args.parts else ():
            if system in epochs:
                epochs[system].append(_run("--child", "epoch", system, str(path), "1024"))
        for kind in readers if "reader" in args.parts else ():
            readers[kind].append(_run("--child", "reader", kind, str(path))["rows_per_s"])
        load.append(os.getloadavg())

    median = {
        s: {b: float(np.median(v)) for b, v in by.items() if v}
        for s, by in steps.items()
        if any(by.values())
    }
    ratio_of = {
        "stream_parquet_over_pymc_minibatch": ("stream_parquet", "pymc_minibatch"),
        "stream_arrays_over_pymc_minibatch": ("stream_arrays", "pymc_minibatch"),
        "parquet_over_arrays": ("stream_parquet", "stream_arrays"),
        "stream_parquet_over_one_step": ("stream_parquet", "stream_parquet_one_step"),
        "stream_parquet_over_numpyro": ("stream_parquet", "numpyro"),
        "gil_released_over_held": ("stream_parquet", "stream_parquet_holding_gil"),
        "dask_cluster_over_parquet": ("stream_dask_cluster", "stream_parquet"),
        "dask_threads_over_parquet": ("stream_dask", "stream_parquet"),
        "stream_arrays_over_numpyro": ("stream_arrays", "numpyro"),
    }
    ratios = {
        f"batch_{batch}": {
            name: median[top][batch] / median[bottom][batch]
            for name, (top, bottom) in ratio_of.items()
            if top in median and bottom in median
        }
        for batch in BATCHES
    }
    reader = {kind: float(np.median(v)) for kind, v in readers.items() if v}
    if len(reader) == len(readers):
        reader["ratio"] = reader["stream"] / reader["raw_scan"]
        reader["ratio_to_one_thread"] = reader["stream"] / reader["raw_scan_one_thread"]
    result = {
        "params": {
            "rows": rows,
            "repetitions": repetitions,
            "batches": list(BATCHES),
            "systems": systems,
            "parts": args.parts,
            "plan_warmup_steps": plan,
            "load_average_1_5_15": load,
            **machine(),
        },
        "notes": notes,
        "steps_per_s": median,
        "ratios": ratios,
        "epoch_at_1024": {
            system: {
                "epoch_s": float(np.median([r["epoch_s"] for r in runs])),
                "peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in runs])),
            }
            for system, runs in epochs.items()
            if runs
        },
        "reader_rows_per_s": reader,
        "all": {"steps_per_s": steps, "epochs": epochs, "readers": readers},
    }
    result["params"]["quick"] = args.quick
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
