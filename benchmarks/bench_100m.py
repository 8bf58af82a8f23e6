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
"""A hundred million rows: streaming ADVI and exact Pathfinder, in one process and on Dask.

Run ``.venv/bin/python benchmarks/bench_100m.py --data-dir DIR --output result.json`` (about
an hour and a half on a 2-core machine, plus two minutes the first time to write the data;
``--quick`` for a smoke run on 2M rows, about five minutes). It prints one JSON object on stdout and rewrites
``--output`` after every system, so an interrupted run keeps what it measured.

The data: a linear regression, ``FEATURES`` float64 columns ``x0``… and ``y``, written once
to ``DIR`` (default ``~/.cache/pymc-streaming-bench/linear_100m``) as Parquet files of
1,000,000 rows: one row group each (pyarrow's default row group is 1,048,576 rows), snappy
compressed, 91 MB a file, 100 files and 9.1 GB for 100M rows. A file is a Dask partition; a
pass reads a row group in pieces of 65,536 rows.

Each system runs in a fresh process, which reports its wall time and peak RSS (``VmHWM`` of
``/proc/self/status``; on the cluster, also each worker's, from the model's construction on:
building the model reads the stream's first batch, for which a worker computes a whole
partition, and ``worker_peak_rss_mb_model_built`` reports that). The ``DaskSource`` is given
the files' row counts (``lengths=``), known from the dataset's manifest, so that it does not
compute every partition to count them:

``advi_10m_local``
    One epoch of streaming ADVI (batches of 1,024, default options) from the first 10M rows
    by ``ParquetSource``: the reference for rows/s and memory.
``advi_local``, ``advi_cluster``
    The same epoch over all the rows, by ``ParquetSource`` in one process, and by a
    ``DaskSource`` of ``dask.dataframe.read_parquet`` on a two-worker ``LocalCluster`` (one
    thread each), whose workers compute the partitions that the fit streams.
``pathfinder_local``, ``pathfinder_cluster``
    ``pmx.fit(method="pathfinder")`` on the same model and ``random_seed``, with 2 paths, 100
    draws per path and 5 ELBO draws (upstream's defaults of 4 paths and 1,000 importance
    draws would evaluate 4,000 points on every row in the last pass); full-data passes read
    here, and mapped over the partitions on the workers. Reported: wall time (compilation
    included) and whether it is within the goal of 10 minutes, passes over the data, peak RSS,
    posterior means against the truth.
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

FEATURES = 10
_NAMES = [f"x{j}" for j in range(FEATURES)]
_COLUMNS = [_NAMES, "y"]
_PATHFINDER = {"num_paths": 2, "num_draws": 100, "num_draws_per_path": 100, "num_elbo_draws": 5}
_PATHFINDER_GOAL_SECONDS = 600  # the goal: Pathfinder on 100M rows within 10 minutes
_SYSTEMS = [
    "advi_10m_local",
    "advi_local",
    "advi_cluster",
    "pathfinder_local",
    "pathfinder_cluster",
]


def write_dataset(directory: Path, rows: int, rows_per_file: int, seed: int = 2026) -> dict:
    """Write the dataset unless it is there; return its description (truth, files, sizes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "dataset.json"
    if manifest.exists():
        described = json.loads(manifest.read_text())
        if described["rows"] == rows and described["rows_per_file"] == rows_per_file:
            return described
    rng = np.random.default_rng(seed)
    truth = {"intercept": 0.5, "beta": np.round(rng.normal(0, 1, FEATURES), 2).tolist()}
    truth["sigma"] = 1.0
    files = []
    started = time.perf_counter()
    seeds = np.random.SeedSequence(seed).spawn(-(-rows // rows_per_file))
    for number, start in enumerate(range(0, rows, rows_per_file)):
        n = min(rows_per_file, rows - start)
        file_rng = np.random.default_rng(seeds[number])
        X = file_rng.normal(size=(n, FEATURES))
        y = truth["intercept"] + X @ np.asarray(truth["beta"]) + file_rng.normal(0, 1.0, n)
        table = pa.table({name: X[:, j] for j, name in enumerate(_NAMES)} | {"y": y})
        path = directory / f"part-{number:05d}.parquet"
        pq.write_table(table, path.with_suffix(".partial"))  # one row group (≤ 1,048,576 rows)
        path.with_suffix(".partial").rename(path)
        files.append(path.name)
    described = {
        "rows": rows,
        "rows_per_file": rows_per_file,
        "files": files,
        "bytes": sum((directory / name).stat().st_size for name in files),
        "row_groups_per_file": pq.ParquetFile(directory / files[0]).num_row_groups,
        "write_seconds": time.perf_counter() - started,
        "truth": truth,
    }
    manifest.write_text(json.dumps(described))
    return described


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker_peak_rss_mb() -> float:
    return _peak_rss_mb()


def _reset_peak_rss() -> None:
    """Start the process's ``VmHWM`` afresh from its current RSS (Linux 4.0+)."""
    Path("/proc/self/clear_refs").write_text("5")


def _model(source):
    import pymc as pm

    with pm.Model() as model:
        X, y = pm.Minibatch(source, batch_size=1_024, streaming=True, random_seed=0)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X @ beta, sigma, observed=y)
    return model


def _source(system: str, directory: Path, described: dict):
    if system.endswith("_cluster"):
        import dask.dataframe as dd

        from pymc_extras.streaming import DaskSource

        files = [str(directory / name) for name in described["files"]]
        frame = dd.read_parquet(files, columns=[*_NAMES, "y"])
        # The files' rows are known: the source need not compute every partition to count.
        lengths = [
            min(described["rows_per_file"], described["rows"] - start)
            for start in range(0, described["rows"], described["rows_per_file"])
        ]
        return DaskSource(frame, columns=_COLUMNS, lengths=lengths)
    from pymc_extras.streaming import ParquetSource

    files = [directory / name for name in described["files"]]
    if system == "advi_10m_local":
        files = files[: max(1, 10_000_000 // described["rows_per_file"])]
    return ParquetSource([str(path) for path in files], columns=_COLUMNS)


def _means(idata_or_approx, draws: int = 1_000) -> dict:
    posterior = getattr(idata_or_approx, "posterior", None)
    if posterior is None:  # an ADVI approximation
        posterior = idata_or_approx.sample(draws, random_seed=0).posterior
    return {
        name: np.atleast_1d(posterior[name].mean(("chain", "draw")).values).round(4).tolist()
        for name in ("intercept", "beta", "sigma")
    }


def child(system: str, directory: str) -> None:
    """Run one system in this (fresh) process and print its figures as JSON."""
    started = time.perf_counter()
    path = Path(directory)
    described = json.loads((path / "dataset.json").read_text())
    client = cluster = None
    if system.endswith("_cluster"):
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        )
        client = Client(cluster)
    try:
        result = _run(system, path, described, client)
        if client is not None:
            result["worker_peak_rss_mb"] = sorted(client.run(_worker_peak_rss_mb).values())
    finally:
        if client is not None:
            client.close()
            cluster.close()
    result["total_seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = _peak_rss_mb()
    json.dump(result, sys.stdout)


def _run(system: str, path: Path, described: dict, client) -> dict:
    import pymc as pm
    import pymc_extras as pmx

    from pymc_extras.streaming.passes import full_data

    setup = time.perf_counter()
    source = _source(system, path, described)
    model = _model(source)
    result: dict = {"rows": source.num_rows, "setup_seconds": time.perf_counter() - setup}
    if client is not None:
        # Building the model read the stream's first batch, on a worker that computed a whole
        # partition for it; the workers' peaks from here on are the fit's.
        result["worker_peak_rss_mb_model_built"] = sorted(client.run(_peak_rss_mb).values())
        client.run(_reset_peak_rss)
    if system.startswith("advi"):
        steps = source.num_rows // 1_024
        start = time.perf_counter()
        with model:
            approx = pm.fit(steps, progressbar=False, random_seed=0)
        seconds = time.perf_counter() - start
        result |= {"steps": steps, "fit_seconds": seconds, "rows_per_s": steps * 1_024 / seconds}
        result["means"] = _means(approx)
        return result
    evaluators: list = []
    original = full_data.FullDataLogp.__init__

    def counting(self, *args, **kwargs):  # count the passes of the evaluator the fit builds
        original(self, *args, **kwargs)
        evaluators.append(self)

    full_data.FullDataLogp.__init__ = counting  # type: ignore[method-assign]
    start = time.perf_counter()
    idata = pmx.fit(
        method="pathfinder", model=model, random_seed=1, progressbar=False, **_PATHFINDER
    )
    seconds = time.perf_counter() - start
    passes = sum(evaluator.passes for evaluator in evaluators)
    rows_read = sum(evaluator.rows_read for evaluator in evaluators)
    result |= {"fit_seconds": seconds, "passes": passes, "data_read": rows_read / source.num_rows}
    result["seconds_per_pass"] = seconds / max(passes, 1)
    result["within_goal"] = seconds <= _PATHFINDER_GOAL_SECONDS
    result["means"] = _means(idata)
    return result


def _run_child(system: str, directory: Path) -> dict:
    command = [sys.executable, __file__, "--child", system, "--data-dir", str(directory)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        return {"error": done.stderr[-3000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_dir / "pymc-streaming-bench" / "linear_100m",
        help="where the dataset is written once and reused (about 8.8 GB)",
    )
    parser.add_argument("--output", type=Path, help="JSON file rewritten after every system")
    parser.add_argument("--quick", action="store_true", help="2M rows in files of 200,000")
    parser.add_argument("--systems", nargs="+", choices=_SYSTEMS, default=_SYSTEMS)
    parser.add_argument("--child", choices=_SYSTEMS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, str(args.data_dir))
        return
    rows, per_file = (2_000_000, 200_000) if args.quick else (100_000_000, 1_000_000)
    directory = args.data_dir.with_name(args.data_dir.name + "_quick") if args.quick else None
    directory = directory or args.data_dir
    described = write_dataset(directory, rows, per_file)
    result: dict = {
        "benchmark": "100m_rows",
        "params": {
            "rows": rows,
            "rows_per_file": per_file,
            "files": len(described["files"]),
            "dataset_gb": described["bytes"] / 1e9,
            "row_groups_per_file": described["row_groups_per_file"],
            "features": FEATURES,
            "batch_size": 1_024,
            "pathfinder": _PATHFINDER | {"random_seed": 1},
            "cluster": "LocalCluster(n_workers=2, processes=True, threads_per_worker=1)",
            "quick": args.quick,
        }
        | machine(),
        "dataset_write_seconds": described["write_seconds"],
        "truth": described["truth"],
    }
    for system in args.systems:
        result[system] = _run_child(system, directory)
        if args.output:
            args.output.write_text(json.dumps(result, indent=2))
    _ratios(result)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _ratios(result: dict) -> None:
    def figure(system: str, key: str):
        return result.get(system, {}).get(key)

    reference = figure("advi_10m_local", "rows_per_s")
    for system in ("advi_local", "advi_cluster"):
        rate = figure(system, "rows_per_s")
        if reference and rate:
            result[system]["rows_per_s_over_10m"] = rate / reference
    local, cluster = figure("pathfinder_local", "means"), figure("pathfinder_cluster", "means")
    if local and cluster:
        result["pathfinder_max_abs_mean_difference"] = max(
            float(np.max(np.abs(np.subtract(local[name], cluster[name])))) for name in local
        )


if __name__ == "__main__":
    main()
