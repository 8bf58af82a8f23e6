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
"""``make demo``: streaming ADVI on a Parquet file larger than the memory the fit uses.

On its first run it writes a logistic regression with known coefficients to
``demo/data/logistic_20M.parquet``: 20 million rows of 10 float64 features and a 0/1 outcome,
about 1.6 GB on disk and 1.8 GB as numpy arrays (it takes about a minute, in a separate process,
one row group at a time). Then it fits the model by streaming ADVI, one pass over the file in
batches of 1,024 rows, and prints the rows, the file size, the fit's speed, the peak memory of
the process, and the posterior means against the true coefficients. It saves an ArviZ plot of
the posteriors with the true values marked.

Run with the fork's Python: ``.venv/bin/python demo/larger_than_memory.py [--rows N]
[--epochs E] [--batch-size B] [--out PATH]``.
"""

import argparse
import resource
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytensor

import pymc as pm

from pymc_extras.streaming import ParquetSource

# The data generator is shared with the benchmarks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from datasets import FEATURES, regression_parquet

DATA = Path(__file__).parent / "data"
DEFAULT_OUT = Path(__file__).parent / "output" / "larger_than_memory.png"


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MB"


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def write_data(path: Path, rows: int) -> dict:
    """Write the dataset in a child process, so its memory does not count against the fit's."""
    if not path.exists():
        print(f"Writing {rows:,} rows to {path} (first run only, about a minute)...", flush=True)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from datasets import regression_parquet; "
        "regression_parquet(sys.argv[2], int(sys.argv[3]), kind='logistic')"
    )
    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    subprocess.run([sys.executable, "-c", code, benchmarks, str(path), str(rows)], check=True)
    return regression_parquet(path, rows, kind="logistic")  # reads the stored truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows in the dataset")
    parser.add_argument("--batch-size", type=int, default=1_024, help="rows per ADVI step")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the data")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save the plot")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="where the dataset is kept")
    args = parser.parse_args()

    args.data_dir.mkdir(parents=True, exist_ok=True)
    name = f"{args.rows // 1_000_000}M" if args.rows % 1_000_000 == 0 else f"{args.rows}"
    path = args.data_dir / f"logistic_{name}.parquet"
    truth = write_data(path, args.rows)
    in_memory_bytes = args.rows * (FEATURES + 1) * 8

    source = ParquetSource(path, columns=[[f"x{j}" for j in range(FEATURES)], "y"])
    print(
        f"\nData: {source.num_rows:,} rows x {FEATURES} features, {path}\n"
        f"      {_mb(path.stat().st_size)} on disk, {_mb(in_memory_bytes)} as numpy arrays"
    )
    with pm.Model() as model:
        X, y = pm.Minibatch(source, batch_size=args.batch_size, streaming=True, random_seed=1)
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        pm.Bernoulli("y", logit_p=intercept + X @ beta, observed=y)

    steps = int(args.epochs * source.num_rows / args.batch_size)
    # Adam, its step size decaying from 0.01 to 0.0001: fast progress first, then averaging out
    # the minibatch noise, so one pass over the file converges.
    learning_rate = pytensor.shared(0.01)

    def decay(approx, losses, i):
        learning_rate.set_value(0.01 * 0.01 ** (i / steps))

    started = time.perf_counter()
    with model:
        approx = pm.fit(
            steps,
            obj_optimizer=pm.adam(learning_rate=learning_rate),
            callbacks=[decay],
            random_seed=1,
        )
    seconds = time.perf_counter() - started
    peak = _peak_rss()
    rows_read = steps * args.batch_size
    print(
        f"\nFit:  streaming ADVI, {steps:,} steps of {args.batch_size:,} rows "
        f"({rows_read / source.num_rows:.2f} passes over the file) in {seconds:.1f} s, "
        f"compilation included: {rows_read / seconds / 1e6:.2f} million rows/s\n"
        f"      peak memory (RSS) of this process: {_mb(peak)}, "
        f"{peak / in_memory_bytes:.0%} of the data's size in memory"
    )

    tree = approx.sample(2_000, random_seed=2)
    posterior = tree["posterior"]
    print(f"\n{'coefficient':<12} {'true':>7} {'posterior mean':>15} {'sd':>8} {'|error|':>8}")
    true_values = {"intercept": [truth["intercept"]], "beta": truth["beta"]}
    worst = 0.0
    for name, values in true_values.items():
        means = np.atleast_1d(posterior[name].mean(("chain", "draw")).values)
        sds = np.atleast_1d(posterior[name].std(("chain", "draw")).values)
        for i, (true, mean, sd) in enumerate(zip(values, means, sds)):
            label = f"{name}[{i}]" if name == "beta" else name
            worst = max(worst, abs(mean - true))
            print(f"{label:<12} {true:7.3f} {mean:15.4f} {sd:8.4f} {abs(mean - true):8.4f}")
    print(f"\nLargest |posterior mean - true value|: {worst:.4f}")

    plot(tree, truth, args.out)
    print(f"Posterior densities, true values marked, saved to {args.out}")


def plot(tree, truth: dict, out: Path):
    """Save ArviZ's posterior densities with the true values as vertical lines; return them."""
    # Only the plot uses them (pymc-extras 0.15.1 imports ArviZ's plotting stack already).
    import arviz as az
    import matplotlib
    import xarray as xr

    matplotlib.use("Agg")  # a file, not a window: the demo runs on headless machines too
    out.parent.mkdir(parents=True, exist_ok=True)
    # Constrained layout makes room for each title above the tick labels of the row before it.
    collection = az.plot_dist(tree, backend="matplotlib", figure_kwargs={"layout": "constrained"})
    dims = tree["posterior"]["beta"].dims[-1]
    references = xr.Dataset(
        {"intercept": truth["intercept"], "beta": (dims, np.asarray(truth["beta"]))}
    )
    az.add_lines(collection, references)
    collection.savefig(out)
    return collection


if __name__ == "__main__":
    main()
