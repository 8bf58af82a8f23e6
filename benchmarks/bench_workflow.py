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
"""The workflow after the fit on Parquet files of 1M and 10M rows: peak memory, passes, time.

Run ``.venv/bin/python benchmarks/bench_workflow.py`` (about 20 minutes on a 2-core machine,
plus a minute or two to write the 10M-row file on the first run; ``--quick`` for a smoke run on
small files). It prints one JSON object on stdout.

The data: ``datasets.regression_parquet``'s linear regression, 10 float64 features plus ``y``,
written once to ``benchmarks/data/`` (git-ignored): 1M rows (about 90 MB) and 10M rows (about
0.9 GB), in row groups of 131,072 rows. A pass reads a row group at a time, with two more read
ahead; with pyarrow's default of 1,048,576 rows per group (``bench_parquet_streaming.py``'s
files) the 1M-row file is a single group, which nothing is read ahead of, so its peak would not
show the steady state of a pass over a larger file.

The posterior: draws around the true coefficients with the posterior's standard deviations
(1 / sqrt(rows)), so that no fit is timed; what is measured is what comes after the fit. Each
task runs in a fresh process per file, and once on 2,048 rows in memory (``floor``: PyMC, the
imports, the compiled functions and the draws, without data):

``loo``
    ``pmx.streaming.loo_subsample`` with a 10,000-row subsample, 1,000 draws, ``method="plpd"``
    and the per-row vectors ``az.compare`` needs written to ``.npy`` files (``pointwise_dir``).
``ppc``
    ``pmx.streaming.ppc_summary`` with 200 draws: per-draw mean, variance and quantiles of the
    whole replicated data, and per-row mean, sd, 90% interval and PIT written to Parquet.
``predict``
    ``pmx.streaming.predict_to_file`` with 200 draws on the file's feature columns (read as new
    data, without ``y``), per-row summaries written to Parquet.

Each reports its peak RSS (``ru_maxrss``), its RSS before the task (imports, model, draws),
passes over the data and wall time; ``peak_ratio_10M_over_1M`` is the test that memory does
not grow with the rows.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from pathlib import Path

import numpy as np

from benchlib import machine, print_result
from datasets import FEATURES, regression_parquet

_DATA = Path(__file__).parent / "data"
_FEATURES = [f"x{j}" for j in range(FEATURES)]
ROW_GROUP = 131_072
SUBSAMPLE = 10_000
LOO_DRAWS = 1_000
PREDICTIVE_DRAWS = 200


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _model(source):
    import pymc as pm

    with pm.Model(coords={"feature": _FEATURES}) as model:
        X, y = pm.Minibatch(source, batch_size=1_024, streaming=True)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, dims="feature")
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X @ beta, sigma, observed=y)
    return model


def _posterior(truth: dict, rows: int, draws: int):
    """Draws around the truth with the posterior's spread: what a converged fit gives."""
    import arviz as az

    rng = np.random.default_rng(1)
    sd = 1 / np.sqrt(rows)
    beta = np.asarray(truth["beta"]) + sd * rng.normal(size=(1, draws, FEATURES))
    return az.from_dict(
        {
            "posterior": {
                "intercept": truth["intercept"] + sd * rng.normal(size=(1, draws)),
                "beta": beta,
                "sigma": np.exp(rng.normal(0, sd / np.sqrt(2), size=(1, draws))),
            }
        },
        dims={"beta": ["feature"]},
        coords={"feature": _FEATURES},
    )


def child(task: str, path: str, output: str) -> None:
    """Run one task on one file (or ``floor``) and print its figures as JSON."""
    import psutil

    import pymc_extras as pmx

    from pymc.streaming import ArraySource

    if path == "floor":
        rng = np.random.default_rng(0)
        X = rng.normal(size=(2_048, FEATURES))
        source = ArraySource([X, 0.5 + X.sum(axis=1) + rng.normal(size=2_048)])
        truth = {"intercept": 0.5, "beta": [1.0] * FEATURES}
        features = ArraySource([X])
    else:
        truth = json.loads(Path(path).with_suffix(".truth.json").read_text())
        source = pmx.streaming.ParquetSource(path, columns=[_FEATURES, "y"])
        features = pmx.streaming.ParquetSource(path, columns=[_FEATURES])
    rows = source.num_rows
    model = _model(source)
    draws = LOO_DRAWS if task == "loo" else PREDICTIVE_DRAWS
    idata = _posterior(truth, rows, draws)
    before = psutil.Process().memory_info().rss / 2**20
    started = time.perf_counter()
    out = Path(output)
    if task == "loo":
        loo = pmx.streaming.loo_subsample(
            idata, model, observations=min(SUBSAMPLE, rows), seed=1, pointwise_dir=out
        )
        figures = {"passes": loo.passes, "elpd": loo.elpd, "se": loo.se}
        figures |= {"subsampling_se": loo.subsampling_se, "p": loo.p}
    elif task == "ppc":
        checks = pmx.streaming.ppc_summary(idata, model, path=out / "checks.parquet")
        figures = {"passes": checks.attrs["passes"], "rows_written": checks.attrs["rows"]}
        figures |= {"quantile_resolution": checks.attrs["quantile_resolution"]["y"]}
    else:
        report = pmx.streaming.predict_to_file(
            idata, features, out / "predictions.parquet", model, random_seed=1
        )
        figures = {"passes": report.passes, "rows_written": report.rows}
    seconds = time.perf_counter() - started
    result = {"rows": rows, "draws": draws, "rss_before_mb": before}
    result |= {"peak_rss_mb": _peak_rss_mb(), "seconds": seconds, "rows_per_s": rows / seconds}
    json.dump(result | figures, sys.stdout)


def _run(task: str, path: str) -> dict:
    output = tempfile.mkdtemp(dir=_DATA)
    command = [sys.executable, __file__, "--child", task, path, output]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(output, ignore_errors=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files")
    parser.add_argument("--child", nargs=3, metavar=("TASK", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = (
        {"100k": 100_000, "300k": 300_000} if args.quick else {"1M": 1_000_000, "10M": 10_000_000}
    )
    _DATA.mkdir(exist_ok=True)
    paths = {label: _DATA / f"linear_{label}_rg128k.parquet" for label in sizes}
    for label, rows in sizes.items():
        regression_parquet(paths[label], rows, row_group_size=ROW_GROUP)
    small, large = sizes
    tasks = {}
    for task in ("loo", "ppc", "predict"):
        runs = {"floor": _run(task, "floor")}
        for label, path in paths.items():
            runs[label] = _run(task, str(path))
            runs[label]["file_mb"] = path.stat().st_size / 2**20
            runs[label]["over_floor_mb"] = runs[label]["peak_rss_mb"] - runs["floor"]["peak_rss_mb"]
        runs[f"peak_ratio_{large}_over_{small}"] = (
            runs[large]["peak_rss_mb"] / runs[small]["peak_rss_mb"]
        )
        tasks[task] = runs
    result = {
        "benchmark": "workflow",
        "params": {
            "rows": sizes,
            "features": FEATURES,
            "row_group_size": ROW_GROUP,
            "loo_subsample": SUBSAMPLE,
            "loo_draws": LOO_DRAWS,
            "predictive_draws": PREDICTIVE_DRAWS,
            **machine(),
        },
        **tasks,
    }
    print_result(result, quick=args.quick)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore::UserWarning")
    main()
