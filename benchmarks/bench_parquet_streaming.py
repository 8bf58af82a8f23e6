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
"""Streaming from Parquet: peak memory against data size, ingest speed, and fit speed.

Run ``.venv/bin/python benchmarks/bench_parquet_streaming.py`` (about 10 minutes on a 2-core
machine, most of it writing the 10M-row file on the first run; ``--quick`` for a smoke run on
small files). It prints one JSON object on stdout.

The data: a linear regression, ``FEATURES`` float64 columns plus ``y``, in row groups of
1,048,576 rows (pyarrow's default, which the source reads a shuffle window at a time), written once to ``benchmarks/data/`` (git-ignored): 1M rows (about 90 MB) and
10M rows (about 0.9 GB).

``memory``
    A fresh process per file fits ADVI by streaming the whole file once (one epoch, batches of
    1,024, default shuffle buffer and prefetch) and reports its peak RSS (``ru_maxrss``), its
    RSS before the fit (imports and model), and rows/s. A third process fits the same model
    from 2,048 rows in memory for as many steps: the floor that PyMC, the imports and the
    compiled step take without data; ``over_floor_mb`` is what streaming adds. The 10M-row fit
    runs once more with ``MIMALLOC_PURGE_DELAY=0``, which makes pyarrow's allocator return freed
    pages at once, and once with ``ParquetSource(..., release_freed_memory=True)``, which asks
    pyarrow's (process-wide) pool to return them every 32 MiB decoded. The figures that
    matter: ``peak_ratio_large_over_small`` (the issue asks ≤ 1.1) and the 10M-row peak.
    Each fit runs once first for 300 steps, so that the compiled steps come from PyTensor's
    caches. ``--memory-only`` runs this part alone; ``--without-jax`` runs it as if JAX were
    not installed (arviz_base imports JAX with pymc_extras when it is: about 140 MB).
    ``bench_memory.py`` compares these fits with pristine PyMC's.
``ingest``, ``ingest_row_groups_65536``
    On the 10M-row file, and on the same rows in row groups of 65,536: rows per second
    delivered as ready, shuffled batches of 256 by a ``ParquetSource`` stream (its
    background reader, default options), against a raw ``pyarrow.dataset`` scan of the
    same columns (``Dataset.to_batches``, pyarrow's defaults, Arrow batches not converted),
    interleaved over repetitions. The issue asks ``ingest_ratio`` ≥ 0.8. The same stream with
    ``shuffle_buffer=0`` (``unshuffled_*``: decoding, conversion to arrays and batching, no
    permutation) shows what the shuffle costs. Each measurement is a fresh process timing its
    second pass over the file, so no reader inherits, or loses, the other's allocator pages.
``fit``
    ADVI steps/s (batches of 256, timed after a warm-up, compilation excluded) streaming from
    the 1M-row Parquet file against the same rows as numpy arrays in memory (an in-memory
    ``ArraySource`` stream, its defaults), interleaved. The issue asks ``fit_ratio`` ≥ 0.9.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from pathlib import Path

import numpy as np

from benchlib import StepClock, print_result
from datasets import FEATURES, regression_parquet

_DATA = Path(__file__).parent / "data"
_COLUMNS = [[f"x{j}" for j in range(FEATURES)], "y"]


def _model(source, batch_size: int, **options):
    import pymc as pm

    with pm.Model() as model:
        X, y = pm.Minibatch(source, batch_size=batch_size, streaming=True, **options)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X @ beta, sigma, observed=y)
    return model


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child_fit(path: str, batch_size: int) -> None:
    """One epoch of streaming ADVI over ``path``; prints JSON (run in a fresh process).

    ``path`` "floor" fits the same model, as many steps as over the 10M-row file, from a
    2,048-row array in memory: the memory of PyMC, its imports and the compiled step alone.
    """
    if os.environ.get("BENCH_WITHOUT_JAX"):
        # As if JAX were not installed: arviz_base imports it when it is, with pymc_extras.
        sys.modules["jax"] = None  # type: ignore[assignment]
    import psutil

    import pymc as pm

    from pymc.streaming import ArraySource
    from pymc_extras.streaming import ParquetSource

    if path == "floor":
        rng = np.random.default_rng(0)
        source = ArraySource([rng.normal(size=(2_048, FEATURES)), rng.normal(size=2_048)])
        steps = 10_000_000 // batch_size
    else:
        options = json.loads(os.environ.get("BENCH_PARQUET_OPTIONS", "{}"))
        source = ParquetSource(path, columns=_COLUMNS, **options)
        steps = source.num_rows // batch_size
    steps = int(os.environ.get("BENCH_STEPS", steps))
    model = _model(source, batch_size, random_seed=0)
    before_fit = psutil.Process().memory_info().rss / 2**20
    warmup = min(100, steps // 10)
    clock = StepClock(warmup=warmup, steps=steps - 2 * warmup)
    with model:
        pm.fit(steps, callbacks=[clock.callback], progressbar=False, random_seed=0)
    rows_per_s = clock.steps * batch_size / clock.seconds()
    result = {"rows": source.num_rows, "rss_before_fit_mb": before_fit}
    result |= {"peak_rss_mb": _peak_rss_mb(), "rows_per_s": rows_per_s}
    json.dump(result, sys.stdout)


def _run_child(flag: str, *args: str, env: dict | None = None) -> dict:
    command = [sys.executable, __file__, flag, *args]
    environment = {**os.environ, **(env or {})}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _child(path: str, batch_size: int, env: dict | None = None) -> dict:
    return _run_child("--child-fit", path, str(batch_size), env=env)


def memory(paths: dict[str, Path], batch_size: int, env: dict | None = None) -> dict:
    env = env or {}
    # Warm-ups: PyTensor's and Numba's caches then hold each fit's compiled step (the rows are
    # a constant of the graph, so each file is one), and no figure includes compiling from
    # scratch, which peaks 100-250 MB higher.
    for path in ("floor", *map(str, paths.values())):
        _child(path, batch_size, {**env, "BENCH_STEPS": "300"})
    out = {"floor_in_memory_2048_rows": _child("floor", batch_size, env)}
    for label, path in paths.items():
        out[label] = _child(str(path), batch_size, env)
        out[label]["file_mb"] = path.stat().st_size / 2**20
        out[label]["over_floor_mb"] = (
            out[label]["peak_rss_mb"] - out["floor_in_memory_2048_rows"]["peak_rss_mb"]
        )
    small, large = (out[label] for label in paths)
    out["peak_ratio_large_over_small"] = large["peak_rss_mb"] / small["peak_rss_mb"]
    # pyarrow's allocator (mimalloc) keeps freed pages for a while; returning them at once is
    # a setting of the environment, documented in docs/streaming.md, not of our code.
    large = str(list(paths.values())[-1])
    label = f"{list(paths)[-1]}_MIMALLOC_PURGE_DELAY=0"
    out[label] = _child(large, batch_size, {**env, "MIMALLOC_PURGE_DELAY": "0"})
    # The opt-in return of pyarrow's freed pages (process-wide), where the reader has it.
    options = {"BENCH_PARQUET_OPTIONS": json.dumps({"release_freed_memory": True})}
    try:
        out[f"{list(paths)[-1]}_release_freed_memory"] = _child(
            large, batch_size, {**env, **options}
        )
    except RuntimeError as error:  # a reader without the option
        out[f"{list(paths)[-1]}_release_freed_memory"] = {"error": str(error)[-200:]}
    return out


def _raw_scan(path: Path) -> float:
    import pyarrow.dataset as ds

    columns = [*_COLUMNS[0], _COLUMNS[1]]
    start = time.perf_counter()
    rows = sum(batch.num_rows for batch in ds.dataset(path).to_batches(columns=columns))
    return rows / (time.perf_counter() - start)


def _our_ingest(path: Path, shuffle_buffer: int = 65_536) -> float:
    from pymc.streaming import Stream
    from pymc_extras.streaming import ParquetSource

    source = ParquetSource(path, columns=_COLUMNS)
    stream = Stream(
        source,
        batch_size=256,
        shuffle_buffer=shuffle_buffer,
        seed=0,
        prefetch=16,
        total_size=None,
        check_finite=False,
        name="ingest",
    )
    batches = source.num_rows // 256
    start = time.perf_counter()
    stream.start_reading()
    try:
        for _ in range(batches):
            stream.next_batch()
    finally:
        stream.stop_reading()
    return batches * 256 / (time.perf_counter() - start)


_INGEST = {
    "raw": _raw_scan,
    "stream": _our_ingest,
    "unshuffled": lambda path: _our_ingest(path, shuffle_buffer=0),
}


def child_ingest(kind: str, path: str) -> None:
    """One untimed pass, then one timed pass, of ``kind`` over ``path``; prints JSON.

    Each reader runs in a process of its own: the raw scan's speed depends on pages its
    allocator kept from the pass before (about 1.4 GB), which the Parquet source's reads would
    otherwise hand back to the system between its repetitions.
    """
    read = _INGEST[kind]
    read(Path(path))
    json.dump({"rows_per_s": read(Path(path))}, sys.stdout)


def ingest(path: Path, repetitions: int) -> dict:
    rates: dict[str, list[float]] = {kind: [] for kind in _INGEST}
    for _ in range(repetitions):
        for kind in _INGEST:
            rates[kind].append(_run_child("--child-ingest", kind, str(path))["rows_per_s"])
    raw, ours, unshuffled = (float(np.median(rates[kind])) for kind in _INGEST)
    return {
        "raw_pyarrow_scan_rows_per_s": raw,
        "parquet_stream_rows_per_s": ours,
        "ingest_ratio": ours / raw,
        "unshuffled_stream_rows_per_s": unshuffled,
        "unshuffled_ingest_ratio": unshuffled / raw,
        "all": rates,
    }


def _steps_per_s(source, warmup: int, steps: int) -> float:
    import pymc as pm

    clock = StepClock(warmup=warmup, steps=steps)
    with _model(source, 256, random_seed=1):
        pm.fit(warmup + steps, callbacks=[clock.callback], progressbar=False, random_seed=1)
    return steps / clock.seconds()


def fit(path: Path, repetitions: int, warmup: int, steps: int) -> dict:
    import pyarrow.parquet as pq

    from pymc.streaming import ArraySource
    from pymc_extras.streaming import ParquetSource

    table = pq.read_table(path)
    X = np.column_stack([table.column(name).to_numpy() for name in _COLUMNS[0]])
    y = table.column("y").to_numpy()
    del table
    variants = {
        "parquet": lambda: ParquetSource(path, columns=_COLUMNS),
        "in_memory_array": lambda: ArraySource([X, y]),
    }
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for repetition in range(repetitions):
        order = list(variants)[repetition % 2 :] + list(variants)[: repetition % 2]
        for name in order:
            rates[name].append(_steps_per_s(variants[name](), warmup, steps))
    medians = {name: float(np.median(values)) for name, values in rates.items()}
    return {
        "steps_per_s": medians,
        "fit_ratio": medians["parquet"] / medians["in_memory_array"],
        "all": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files, one repetition")
    parser.add_argument("--memory-only", action="store_true", help="only the peak-memory part")
    parser.add_argument(
        "--without-jax", action="store_true", help="fit as if JAX were not installed"
    )
    parser.add_argument("--child-fit", nargs=2, metavar=("PATH", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--child-ingest", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_fit:
        child_fit(args.child_fit[0], int(args.child_fit[1]))
        return
    if args.child_ingest:
        child_ingest(*args.child_ingest)
        return
    sizes = {"1M": 1_000_000, "10M": 10_000_000}
    if args.quick:
        sizes = {"100k": 100_000, "300k": 300_000}
    _DATA.mkdir(exist_ok=True)
    paths = {label: _DATA / f"linear_{label}.parquet" for label in sizes}
    for label, rows in sizes.items():
        regression_parquet(paths[label], rows)
    small, large = paths.values()
    if args.memory_only:
        params = {"rows": sizes, "features": FEATURES, "row_group_size": 1_048_576}
        params["without_jax"] = args.without_jax
        env = {"BENCH_WITHOUT_JAX": "1"} if args.without_jax else {}
        result = {
            "benchmark": "parquet_streaming_memory",
            "params": params,
            "memory": memory(paths, batch_size=1024, env=env),
        }
        print_result(result, quick=args.quick)
        return
    # The same rows in row groups of 65,536 (the default shuffle buffer): each read whole,
    # decoded ahead by pyarrow, instead of decoded a window at a time.
    small_groups = _DATA / f"linear_{list(sizes)[-1]}_rg64k.parquet"
    regression_parquet(small_groups, list(sizes.values())[-1], row_group_size=65_536)
    repetitions = 1 if args.quick else 5
    result = {
        "benchmark": "parquet_streaming",
        "params": {
            "rows": sizes,
            "features": FEATURES,
            "row_group_size": 1_048_576,
            "repetitions": repetitions,
        },
        "memory": memory(paths, batch_size=1024),
        "ingest": ingest(large, repetitions),
        "ingest_row_groups_65536": ingest(small_groups, repetitions),
        "fit": fit(small, repetitions, warmup=500, steps=1_000 if args.quick else 5_000),
    }
    print_result(result, quick=args.quick)


if __name__ == "__main__":
    main()
