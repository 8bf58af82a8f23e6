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
"""Pathfinder on streaming data: wall time, data read per run, and peak memory.

Run ``.venv/bin/python benchmarks/bench_streaming_pathfinder.py`` (a few minutes on a 2-core
machine; ``--quick`` for a smoke run). It prints one JSON object on stdout.

``time``
    A linear regression (``_N_ROWS`` rows, ``_N_FEATURES`` features) fitted by
    ``pmx.fit(method="pathfinder")`` three ways, interleaved over ``repeats`` repetitions in an
    order rotated each time: on a streaming ``pm.Minibatch`` of the arrays in memory
    (``streaming``), and on the arrays themselves with ``parallel=False`` (``in_memory_serial``:
    the same arithmetic in one process) and with the default ``parallel=True``
    (``in_memory_parallel``: one worker process per path, two at a time on two cores). Wall
    time is the whole call, compilation included, as a user sees it; ``compute_s`` is
    Pathfinder's own ``compute_time`` (compilation excluded). Ratios are medians of the
    per-repetition ratios of variants run next to each other.
``data_read``
    For the linear regression and a hierarchical model (random intercepts of 60 groups), a
    counting source reports the rows read in a run, as a multiple of the dataset
    (``reads``), next to the L-BFGS evaluations of each path (distinct points at which L-BFGS
    asked for the value and gradient, over all attempts). The issue asks for
    ``reads <= sum(evaluations) + 3``, and as a stretch ``reads <= max(evaluations) + 3``.
``memory``
    In a fresh subprocess per variant, Pathfinder on ``_MEMORY_ROWS`` rows stored as ``.npy``
    files, several times larger than ``_MEMORY_BUDGET_MB``, the memory the run is allowed
    above what the interpreter holds after building the model. ``memmap`` reads
    ``np.load(..., mmap_mode="r")`` arrays; ``file_blocks`` a zero-argument function reading the
    files in blocks with ordinary reads. A thread samples ``/proc/self/status`` every 5 ms:
    ``peak_anon_growth_mb`` is the peak of the process's anonymous memory (what it allocates)
    above its level before the fit (after a warm-up fit of the same model on 5,000 rows in
    memory, which compiles what the fit runs), and ``peak_rss_growth_mb`` the same for the whole resident
    set, which for a memmap also counts the pages of the file the kernel keeps mapped (page
    cache it may drop at any time).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from pathlib import Path

import numpy as np

_N_ROWS = 200_000
_N_FEATURES = 10
_GROUPS = 60
_REPEATS = 3
_NUM_PATHS = 4
_MEMORY_ROWS = 5_000_000
_MEMORY_BUDGET_MB = 96
_MEMORY_FIT = {"num_paths": 2, "num_draws": 100, "num_draws_per_path": 100, "num_elbo_draws": 5}
_QUICK = {"n_rows": 20_000, "repeats": 1, "memory_rows": 300_000}
_DATA_SEED = 0
_FIT_SEED = 1


def _regression(n_rows: int, seed: int = _DATA_SEED):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, _N_FEATURES))
    y = 0.5 + X @ np.linspace(-1, 1, _N_FEATURES) + rng.normal(size=n_rows)
    return X, y


def _linear(X_data, y_data):
    import pymc as pm

    with pm.Model() as model:
        beta = pm.Normal("beta", 0, 2, shape=_N_FEATURES)
        intercept = pm.Normal("intercept", 0, 2)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X_data @ beta, sigma, observed=y_data)
    return model


def _hierarchical(g_data, y_data):
    import pymc as pm

    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 2)
        tau = pm.HalfNormal("tau", 1)
        z = pm.Normal("z", 0, 1, shape=_GROUPS)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", (mu + tau * z)[g_data], sigma, observed=y_data)
    return model


class _Counting:
    """A re-iterable over aligned arrays in 65,536-row chunks that counts the rows it yields."""

    def __init__(self, *arrays):
        self.arrays = arrays
        self.num_rows = len(arrays[0])
        self.rows = 0

    def __iter__(self):
        for start in range(0, self.num_rows, 65_536):
            chunk = tuple(array[start : start + 65_536] for array in self.arrays)
            self.rows += len(chunk[0])
            yield chunk


def _pathfinder(model, **options):
    import pymc_extras as pmx

    options = {"random_seed": _FIT_SEED, "progressbar": False, **options}
    return pmx.fit(method="pathfinder", model=model, **options)


def _time(n_rows: int, repeats: int) -> dict:
    import pymc as pm

    X, y = _regression(n_rows)
    variants = {
        "streaming": lambda: _linear(*pm.Minibatch(X, y, batch_size=256, streaming=True)),
        "in_memory_serial": lambda: _linear(X, y),
        "in_memory_parallel": lambda: _linear(X, y),
    }
    parallel = {"streaming": False, "in_memory_serial": False, "in_memory_parallel": True}
    wall: dict[str, list[float]] = {name: [] for name in variants}
    compute: dict[str, list[float]] = {name: [] for name in variants}
    means = {}
    names = list(variants)
    for rep in range(repeats):
        for name in names[rep % 3 :] + names[: rep % 3]:
            model = variants[name]()
            start = time.perf_counter()
            idata = _pathfinder(model, num_paths=_NUM_PATHS, parallel=parallel[name])
            wall[name].append(time.perf_counter() - start)
            compute[name].append(float(idata.pathfinder.compute_time))
            means[name] = idata.posterior["beta"].mean(("chain", "draw")).values
    ratio = {
        f"streaming_vs_{other}": round(
            statistics.median(s / o for s, o in zip(wall["streaming"], wall[other])), 3
        )
        for other in ("in_memory_serial", "in_memory_parallel")
    }
    return {
        "wall_s": {name: round(statistics.median(times), 2) for name, times in wall.items()},
        "compute_s": {name: round(statistics.median(times), 2) for name, times in compute.items()},
        "wall_ratio": ratio,
        "max_abs_diff_beta_mean_vs_serial": float(
            np.abs(means["streaming"] - means["in_memory_serial"]).max()
        ),
    }


def _data_read(n_rows: int) -> dict:
    import pymc as pm

    from pymc_extras.inference.pathfinder import full_data

    made = []
    original = full_data.full_data_pathfinder

    def remember(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    # To read each path's L-BFGS evaluations: multipath_pathfinder imports the function from
    # this module when it is called.
    full_data.full_data_pathfinder = remember
    try:
        X, y = _regression(n_rows)
        rng = np.random.default_rng(_DATA_SEED)
        groups = rng.integers(_GROUPS, size=n_rows)
        y_grouped = rng.normal(size=_GROUPS)[groups] + rng.normal(size=n_rows)
        result = {}
        for name, build, data in [
            ("linear", _linear, (X, y)),
            ("hierarchical", _hierarchical, (groups, y_grouped)),
        ]:
            source = _Counting(*data)
            model = build(*pm.Minibatch(source, batch_size=256, streaming=True))
            _pathfinder(model, num_paths=_NUM_PATHS)
            evaluations = made[-1].passes.evaluations
            reads = source.rows / n_rows
            result[name] = {
                "reads": reads,
                "evaluations_per_path": evaluations,
                "sum_evaluations": sum(evaluations),
                "max_evaluations": max(evaluations),
                "reads_within_sum_plus_3": reads <= sum(evaluations) + 3,
                "reads_within_max_plus_3": reads <= max(evaluations) + 3,
            }
        return result
    finally:
        full_data.full_data_pathfinder = original


def _write_dataset(folder: Path, n_rows: int) -> int:
    """Write X.npy and y.npy block by block; return their bytes."""
    rng = np.random.default_rng(_DATA_SEED)
    X = np.lib.format.open_memmap(folder / "X.npy", mode="w+", shape=(n_rows, _N_FEATURES))
    y = np.lib.format.open_memmap(folder / "y.npy", mode="w+", shape=(n_rows,))
    for start in range(0, n_rows, 500_000):
        rows = min(500_000, n_rows - start)
        X[start : start + rows] = rng.normal(size=(rows, _N_FEATURES))
        y[start : start + rows] = 0.5 + X[start : start + rows] @ np.linspace(-1, 1, _N_FEATURES)
        y[start : start + rows] += rng.normal(size=rows)
    X.flush(), y.flush()
    return X.nbytes + y.nbytes


def _memory_child(folder: str, variant: str) -> None:
    """Run in a subprocess: fit, sampling /proc/self/status, and print the peaks as JSON."""
    import pymc as pm

    def status() -> dict[str, int]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) // 1024  # MB
        return fields

    files = [Path(folder) / "X.npy", Path(folder) / "y.npy"]
    n_rows = np.load(files[1], mmap_mode="r").shape[0]
    if variant == "memmap":
        sources = [np.load(f, mmap_mode="r") for f in files]
    else:

        def read_blocks(rows_per_block: int = 65_536):
            handles = [open(f, "rb") for f in files]
            try:
                shapes = []
                for handle in handles:
                    np.lib.format.read_magic(handle)
                    shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
                    shapes.append((shape, dtype))
                for start in range(0, n_rows, rows_per_block):
                    rows = min(rows_per_block, n_rows - start)
                    yield tuple(
                        np.fromfile(
                            h, dtype=dtype, count=rows * int(np.prod(shape[1:], dtype=int))
                        ).reshape((rows, *shape[1:]))
                        for h, (shape, dtype) in zip(handles, shapes)
                    )
            finally:
                for handle in handles:
                    handle.close()

        sources = [read_blocks]
    # A warm-up fit of the same model on a few rows in memory compiles (and JIT-compiles) what
    # the real fit runs: the figures are the memory of the fit, not of the compilers.
    X_small, y_small = _regression(5_000)
    _pathfinder(
        _linear(*pm.Minibatch(X_small, y_small, batch_size=256, streaming=True)),
        parallel=False,
        **_MEMORY_FIT,
    )
    minibatch = pm.Minibatch(*sources, batch_size=256, streaming=True, total_size=n_rows)
    model = _linear(*minibatch)
    before = status()
    peaks = dict(before)
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            for key, value in status().items():
                peaks[key] = max(peaks[key], value)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    idata = _pathfinder(model, parallel=False, **_MEMORY_FIT)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    for key, value in status().items():
        peaks[key] = max(peaks[key], value)
    json.dump(
        {
            "seconds": round(seconds, 1),
            "before_mb": before,
            "peak_mb": peaks,
            "peak_anon_growth_mb": peaks["RssAnon"] - before["RssAnon"],
            "peak_rss_growth_mb": peaks["VmRSS"] - before["VmRSS"],
            "beta_mean": idata.posterior["beta"].mean(("chain", "draw")).values.round(3).tolist(),
        },
        sys.stdout,
    )


def _memory(n_rows: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        dataset_mb = _write_dataset(Path(folder), n_rows) / 2**20
        result: dict = {
            "dataset_mb": round(dataset_mb, 1),
            "budget_mb": _MEMORY_BUDGET_MB,
            "dataset_over_budget": round(dataset_mb / _MEMORY_BUDGET_MB, 1),
        }
        for variant in ("memmap", "file_blocks"):
            child = subprocess.run(
                [sys.executable, __file__, "--memory-child", folder, variant],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(child.stdout)
            figures["within_budget"] = figures["peak_anon_growth_mb"] <= _MEMORY_BUDGET_MB
            result[variant] = figures
        return result


def run(*, n_rows: int = _N_ROWS, repeats: int = _REPEATS, memory_rows: int = _MEMORY_ROWS):
    """All three figures, as one dict."""
    from benchlib import machine

    wall_start = time.perf_counter()
    return {
        "benchmark": "streaming_pathfinder",
        "time": _time(n_rows, repeats),
        "data_read": _data_read(n_rows),
        "memory": _memory(memory_rows),
        "params": {
            "n_rows": n_rows,
            "n_features": _N_FEATURES,
            "groups": _GROUPS,
            "num_paths": _NUM_PATHS,
            "repeats": repeats,
            "memory_rows": memory_rows,
            "memory_fit": _MEMORY_FIT,
            "pathfinder": "pmx.fit defaults otherwise (num_draws 1000, psis)",
            "chunk_size": "default (65,536)",
            "fit_random_seed": _FIT_SEED,
            **machine(),
        },
        "wall_s": round(time.perf_counter() - wall_start, 1),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, run the benchmark and print its JSON on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    parser.add_argument("--repeats", type=int, help=f"repetitions (default {_REPEATS})")
    parser.add_argument("--memory-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        _memory_child(*args.memory_child)
        return
    from benchlib import print_result

    options = dict(_QUICK) if args.quick else {}
    if args.repeats is not None:
        options["repeats"] = args.repeats
    print_result(run(**options), quick=args.quick)


if __name__ == "__main__":
    main()
