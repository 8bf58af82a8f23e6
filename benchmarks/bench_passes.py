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
"""Full-data passes against the speed of the disk: a pass ÷ (raw scan + NumPy's evaluation).

Run ``.venv/bin/python benchmarks/bench_passes.py`` (about 25 minutes on 2 cores, plus a minute
the first time to write the data; ``--quick`` for a smoke run on 500,000 rows). It prints one
JSON object on stdout. ``--rows 100000000`` runs it on 100M rows (9 GB of Parquet per model,
written once; the NumPy reference then evaluates the first 10M rows in memory and is scaled
by 10, since it holds its rows in memory and takes time in proportion to them).

The data: linear, logistic and Poisson regressions, 10 float64 features and ``y`` (float64,
int64 0/1, int64 counts), each one Parquet file in row groups of 1,048,576 rows, written once
to ``benchmarks/data/`` (``datasets.regression_parquet``). The models: an intercept and 10
coefficients, ``Normal(0, 5)`` priors, and for the linear one a ``HalfNormal(2)`` noise scale:
11 or 12 parameters, float64.

Systems, each measurement in a fresh process, the repetitions interleaving them so that a burst
of load on the shared machine hits them alike (figures are medians, ratios are of medians):

``pass``
    ``FullDataLogp(model).evaluate(points)`` over ``pm.Minibatch(ParquetSource(file),
    streaming=True)``: the exact full-data log density and gradient at ``P`` points, as a
    Pathfinder pass computes them. One pass to compile and warm the page cache, then one timed.
``scan``
    A raw ``pyarrow.dataset`` scan of the same columns in one thread (``use_threads=False``),
    to the same row-major float64 matrix of features (``np.column_stack`` of each record
    batch's columns) and the outcome vector; its second pass is timed. The disk's speed, as
    far as Python can see it.
``numpy``, ``numpy_one_thread``
    NumPy evaluating the same log density and gradient at the same points on the same rows
    held in memory, 65,536 rows at a time: one GEMM for all points (``X @ B.T``), elementwise
    work, one GEMM for the gradient (``X.T @ R``). The values are checked against the pass's.
    With OpenBLAS's default threads (both cores), and with one (``OPENBLAS_NUM_THREADS=1``):
    the reference is whichever is faster, since threads that help on a quiet machine spin and
    wait on a loaded one.

``ratio`` is ``pass ÷ (scan + the faster numpy)``; the goal is at most 1.5, for 1 and 24
points. A pass reads and decodes on one core while the other evaluates, so it can cost less
than reading and then evaluating. ``cpu_ratio`` is the same ratio of CPU seconds (all threads
of each process), which a loaded machine distorts less than wall time.

``--dask-memory`` measures instead the peak memory of the workers of a two-worker
``LocalCluster`` (one thread each, processes) during full-data passes over a ``DaskSource`` of
1M-row Parquet partitions: each worker's ``VmHWM`` after the imports, after loading the
compiled evaluation, and after passes with 1 and 24 points (the goal: at most 600 MB).
"""

import argparse
import json
import os
import subprocess
import sys
import time

from pathlib import Path

import numpy as np

from benchlib import machine
from datasets import FEATURES, regression_parquet

_DATA = Path(__file__).parent / "data"
_NAMES = [f"x{j}" for j in range(FEATURES)]
_COLUMNS = [_NAMES, "y"]
MODELS = ("linear", "logistic", "poisson")
POINTS = (1, 24)
SYSTEMS = ("pass", "scan", "numpy", "numpy_one_thread")
_ONE_THREAD = dict.fromkeys(("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"), "1")
_NUMPY_ROWS = 65_536
_NUMPY_MAX_ROWS = 10_000_000


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _points(kind: str, count: int) -> np.ndarray:
    """``count`` raveled points near the truth: intercept, 10 coefficients (, log sigma)."""
    size = FEATURES + 1 + (kind == "linear")
    return np.random.default_rng(7).normal(scale=0.1, size=(count, size))


def _model(kind: str, source):
    import pytensor.tensor as pt

    import pymc as pm

    with pm.Model() as model:
        X, y = pm.Minibatch(source, batch_size=1_024, streaming=True)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        eta = intercept + X @ beta
        if kind == "linear":
            sigma = pm.HalfNormal("sigma", 2)
            pm.Normal("y", eta, sigma, observed=y)
        elif kind == "logistic":
            pm.Bernoulli("y", logit_p=eta, observed=y)
        else:
            pm.Poisson("y", pt.exp(eta), observed=y)
    return model


# --- one measurement, in a fresh process -----------------------------------------------------


def child_pass(kind: str, path: str, count: int) -> dict:
    from pymc_extras.streaming import ParquetSource
    from pymc_extras.streaming.passes.full_data import FullDataLogp

    full = FullDataLogp(_model(kind, ParquetSource(path, columns=_COLUMNS)))
    points = _points(kind, count)
    full.evaluate(points)  # compiles, and warms the page cache
    cpu, main = time.process_time(), time.thread_time()
    started = time.perf_counter()
    result = full.evaluate(points)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "main_thread_cpu_seconds": time.thread_time() - main,
        "logp": result.logp.tolist(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def child_scan(kind: str, path: str, count: int) -> dict:
    import pyarrow.dataset as ds

    def one_pass() -> int:
        rows = 0
        batches = ds.dataset(path).to_batches(columns=[*_NAMES, "y"], use_threads=False)
        for batch in batches:
            X = np.column_stack([batch.column(j).to_numpy() for j in range(FEATURES)])
            y = batch.column(FEATURES).to_numpy()
            rows += min(len(X), len(y))
        return rows

    one_pass()
    started, cpu = time.perf_counter(), time.process_time()
    rows = one_pass()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "rows": rows}


def _arrays(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rows`` rows as arrays in memory: X (rows, 10) float64 and y, written once."""
    files = path.with_suffix(f".{rows}.X.npy"), path.with_suffix(f".{rows}.y.npy")
    if not all(file.exists() for file in files):
        import pyarrow.parquet as pq

        table = pq.read_table(path).slice(0, rows)
        np.save(files[0], np.column_stack([table.column(n).to_numpy() for n in _NAMES]))
        np.save(files[1], table.column("y").to_numpy())
        del table
    return np.load(files[0]), np.load(files[1])


def _numpy_logp_dlogp(kind: str, X, y, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's log density and gradient at ``points``, 65,536 rows at a time."""
    from scipy.special import expit, gammaln

    a, B = points[:, 0], points[:, 1 : 1 + FEATURES]
    logp = np.zeros(len(points))
    grad = np.zeros(points.shape)
    if kind == "linear":
        sigma = np.exp(points[:, -1])
    for start in range(0, len(X), _NUMPY_ROWS):
        Xc, yc = X[start : start + _NUMPY_ROWS], y[start : start + _NUMPY_ROWS]
        eta = Xc @ B.T + a  # (rows, P): one GEMM for all points
        yc = yc[:, None]
        if kind == "linear":
            z = (yc - eta) / sigma
            logp += -0.5 * np.einsum("ij,ij->j", z, z)
            residual = z / sigma
            grad[:, -1] += np.einsum("ij,ij->j", z, z)
        elif kind == "logistic":
            logp += (yc * eta - np.logaddexp(0, eta)).sum(0)
            residual = yc - expit(eta)
        else:
            mu = np.exp(eta)
            logp += (yc * eta - mu).sum(0) - gammaln(yc[:, 0] + 1.0).sum()
            residual = yc - mu
        grad[:, 0] += residual.sum(0)
        grad[:, 1 : 1 + FEATURES] += (Xc.T @ residual).T
    n = len(X)
    if kind == "linear":
        logp += n * (-np.log(sigma) - 0.5 * np.log(2 * np.pi))
        grad[:, -1] -= n
        # HalfNormal(2) on sigma, with the log transform's Jacobian.
        logp += 0.5 * np.log(2 / (np.pi * 4)) - sigma**2 / 8 + points[:, -1]
        grad[:, -1] += -(sigma**2) / 4 + 1
    # Normal(0, 5) priors on the intercept and the coefficients.
    coefficients = points[:, : 1 + FEATURES]
    logp += (-0.5 * (coefficients / 5) ** 2 - np.log(5) - 0.5 * np.log(2 * np.pi)).sum(1)
    grad[:, : 1 + FEATURES] -= coefficients / 25
    return logp, grad


def child_numpy(kind: str, path: str, count: int) -> dict:
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    in_memory = min(rows, _NUMPY_MAX_ROWS)
    X, y = _arrays(Path(path), in_memory)
    y = y.astype(np.float64)  # as the pass's float arithmetic takes it
    points = _points(kind, count)
    _numpy_logp_dlogp(kind, X[:_NUMPY_ROWS], y[:_NUMPY_ROWS], points)  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    logp, _ = _numpy_logp_dlogp(kind, X, y, points)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds * rows / in_memory,
        "cpu_seconds": (time.process_time() - cpu) * rows / in_memory,
        "rows_in_memory": in_memory,
        "logp": logp.tolist() if in_memory == rows else None,
    }


def _reset_peak_rss() -> None:
    """Start the process's ``VmHWM`` afresh from its current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def child_dask_memory(directory: str, rows_per_file: int, counts: list[int]) -> dict:
    import dask.dataframe as dd

    from distributed import Client, LocalCluster

    from pymc_extras.streaming import DaskSource
    from pymc_extras.streaming.passes.full_data import FullDataLogp

    def peaks(client) -> list[float]:
        return sorted(client.run(_peak_rss_mb).values())

    result: dict = {}
    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        result["worker_peak_rss_mb_started"] = peaks(client)
        files = sorted(Path(directory).glob("part-*.parquet"))
        frame = dd.read_parquet([str(f) for f in files], columns=[*_NAMES, "y"])
        # The lengths are known: DaskSource need not compute every partition to count them.
        source = DaskSource(frame, columns=_COLUMNS, lengths=[rows_per_file] * len(files))
        full = FullDataLogp(_model("linear", source))
        # Building the model read the first rows of the stream, on a worker, which computed a
        # whole partition: that is the stream's first batch, not the passes.
        result["worker_peak_rss_mb_model_built"] = peaks(client)
        client.run(_reset_peak_rss)
        result["partitions"] = len(source.block_rows)
        result["rows_per_partition"] = max(source.block_rows)
        for count in counts:
            started = time.perf_counter()
            full.evaluate(_points("linear", count))
            result[f"pass_{count}_points_seconds"] = time.perf_counter() - started
            result[f"worker_peak_rss_mb_passes_to_{count}_points"] = peaks(client)
        full.close()
    result["client_peak_rss_mb"] = _peak_rss_mb()
    return result


# --- the driver ------------------------------------------------------------------------------


def _run(*args: str, env: dict | None = None) -> dict:
    command = [sys.executable, __file__, "--child", *args]
    environ = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environ)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _dask_memory(args) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_100m import write_dataset

    rows, per_file = (2_000_000, 1_000_000) if args.quick else (4_000_000, 1_000_000)
    directory = _DATA / f"linear_{rows // 1_000_000}M_partitions"
    described = write_dataset(directory, rows, per_file)
    load = [os.getloadavg()]
    figures = _run("dask_memory", str(directory), str(per_file), *map(str, args.points))
    load.append(os.getloadavg())
    return {
        "benchmark": "dask_worker_memory",
        "params": {
            "rows": rows,
            "rows_per_partition": per_file,
            "dataset_mb": described["bytes"] / 1e6,
            "points": list(args.points),
            "cluster": "LocalCluster(n_workers=2, processes=True, threads_per_worker=1)",
            "load_average_1_5_15": load,
            **machine(),
        },
        **figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500,000 rows, one repetition")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--points", nargs="+", type=int, default=list(POINTS))
    parser.add_argument("--dask-memory", action="store_true", help="the workers' peak memory")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "dask_memory":
            figures = child_dask_memory(rest[0], int(rest[1]), [int(c) for c in rest[2:]])
        else:
            child = {"pass": child_pass, "scan": child_scan, "numpy": child_numpy}[kind]
            figures = child(rest[0], rest[1], int(rest[2]))
        json.dump(figures, sys.stdout)
        return
    if args.dask_memory:
        result = _dask_memory(args)
        result["params"]["quick"] = args.quick
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return

    rows = 500_000 if args.quick else args.rows
    repetitions = 1 if args.quick else args.repetitions
    _DATA.mkdir(exist_ok=True)
    label = f"{rows // 1_000_000}M" if rows >= 1_000_000 else str(rows)
    paths = {kind: _DATA / f"{kind}_{label}.parquet" for kind in args.models}
    for kind, path in paths.items():
        regression_parquet(path, rows, kind=kind)
    load = [os.getloadavg()]
    runs: dict = {k: {p: {s: [] for s in SYSTEMS} for p in args.points} for k in args.models}
    for repetition in range(repetitions):
        order = SYSTEMS[repetition % len(SYSTEMS) :] + SYSTEMS[: repetition % len(SYSTEMS)]
        for kind in args.models:
            for count in args.points:
                for system in order:
                    child, env = system, None
                    if system == "numpy_one_thread":
                        child, env = "numpy", _ONE_THREAD
                    got = _run(child, kind, str(paths[kind]), str(count), env=env)
                    runs[kind][count][system].append(got)
        load.append(os.getloadavg())

    figures: dict = {}
    for kind, by_points in runs.items():
        figures[kind] = {}
        for count, by_system in by_points.items():
            median = {s: float(np.median([r["seconds"] for r in by_system[s]])) for s in SYSTEMS}
            cpu = {s: float(np.median([r["cpu_seconds"] for r in by_system[s]])) for s in SYSTEMS}
            # NumPy at its best: with its default BLAS threads or with one, whichever is faster.
            numpy_best = min(median["numpy"], median["numpy_one_thread"])
            reference = median["scan"] + numpy_best
            cpu_reference = cpu["scan"] + min(cpu["numpy"], cpu["numpy_one_thread"])
            checked = [r["logp"] for r in by_system["numpy"] if r["logp"] is not None]
            agree = None
            if checked:
                agree = bool(np.allclose(by_system["pass"][0]["logp"], checked[0], rtol=1e-9))
            figures[kind][f"{count}_points"] = {
                "seconds": median,
                "ratio": median["pass"] / reference,
                "pass_over_numpy": median["pass"] / numpy_best,
                "cpu_seconds": cpu,
                "cpu_ratio": cpu["pass"] / cpu_reference,
                "pass_main_thread_cpu_seconds": float(
                    np.median([r["main_thread_cpu_seconds"] for r in by_system["pass"]])
                ),
                "pass_peak_rss_mb": float(np.median([r["peak_rss_mb"] for r in by_system["pass"]])),
                "numpy_logp_agrees_with_pass": agree,
            }
    result = {
        "benchmark": "full_data_passes",
        "params": {
            "rows": rows,
            "features": FEATURES,
            "models": list(args.models),
            "points": list(args.points),
            "repetitions": repetitions,
            "numpy_rows_per_call": _NUMPY_ROWS,
            "numpy_rows_in_memory": min(rows, _NUMPY_MAX_ROWS),
            "load_average_1_5_15": load,
            "quick": args.quick,
            **machine(),
        },
        "figures": figures,
        "all": {
            kind: {
                str(count): {s: [r["seconds"] for r in v] for s, v in by.items()}
                for count, by in by_points.items()
            }
            for kind, by_points in runs.items()
        },
    }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
