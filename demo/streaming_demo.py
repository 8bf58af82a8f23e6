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
"""``make demo``: streaming ADVI against PyMC's in-memory ``pm.Minibatch`` ADVI and full-data ADVI.

Reproduces the prototype experiment: a linear regression on N = 50,000 rows, batches of 256,
fitted three ways with the same model, optimizer and number of steps. It prints the posterior
means and standard deviations side by side with their differences, and saves a comparison plot
(ArviZ ``plot_dist``) of the three posteriors.

Run with the fork's Python: ``.venv/bin/python demo/streaming_demo.py [--steps N] [--out PATH]``.
"""

import argparse
import time

from pathlib import Path

import arviz as az
import matplotlib
import numpy as np

import pymc as pm

matplotlib.use("Agg")  # a file, not a window: the demo runs on headless machines too

N_ROWS = 50_000
BATCH_SIZE = 256
TRUE_INTERCEPT = 1.0
TRUE_BETA = np.array([0.5, -1.0, 2.0])
DEFAULT_OUT = Path(__file__).parent / "output" / "streaming_vs_in_memory.png"


def simulate(seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, len(TRUE_BETA)))
    y = TRUE_INTERCEPT + X @ TRUE_BETA + rng.normal(size=N_ROWS)
    return X, y


def build_model(X_data, y_data, **likelihood) -> pm.Model:
    with pm.Model() as model:
        intercept = pm.Normal("intercept", 0, 10)
        beta = pm.Normal("beta", 0, 10, shape=len(TRUE_BETA))
        sigma = pm.HalfNormal("sigma", 5)
        pm.Normal("y", intercept + X_data @ beta, sigma, observed=y_data, **likelihood)
    return model


def fit(name: str, model: pm.Model, steps: int):
    started = time.perf_counter()
    with model:
        approx = pm.fit(steps, random_seed=1, progressbar=True)
    seconds = time.perf_counter() - started
    print(f"{name:>10}: {steps:,} steps in {seconds:.1f} s (compilation included)")
    return approx


def posterior_summary(tree) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Posterior mean and standard deviation of each parameter."""
    posterior = tree["posterior"]
    return {
        name: (
            posterior[name].mean(("chain", "draw")).values,
            posterior[name].std(("chain", "draw")).values,
        )
        for name in ("intercept", "beta", "sigma")
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="ADVI steps per fit")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save the plot")
    args = parser.parse_args()

    X, y = simulate()
    print(f"Linear regression, N = {N_ROWS:,} rows, batch_size = {BATCH_SIZE}\n")

    X_mb, y_mb = pm.Minibatch(X, y, batch_size=BATCH_SIZE, streaming=True)
    streaming = fit("streaming", build_model(X_mb, y_mb), args.steps)

    X_mem, y_mem = pm.Minibatch(X, y, batch_size=BATCH_SIZE)
    in_memory = fit("in-memory", build_model(X_mem, y_mem, total_size=N_ROWS), args.steps)

    full = fit("full data", build_model(X, y), args.steps)

    fits = {"streaming": streaming, "in-memory": in_memory, "full data": full}
    trees = {name: approx.sample(2_000, random_seed=2) for name, approx in fits.items()}
    summaries = {name: posterior_summary(tree) for name, tree in trees.items()}

    truth = {"intercept": [TRUE_INTERCEPT], "beta": TRUE_BETA, "sigma": [1.0]}
    print(
        f"\n{'parameter':<10} {'true':>7} {'streaming':>17} {'in-memory':>17} {'full data':>17}"
        f" {'|stream-full|':>14} {'|mem-full|':>11}"
    )
    worst = {"streaming": 0.0, "in-memory": 0.0}
    for name in ("intercept", "beta", "sigma"):
        for i, true in enumerate(np.atleast_1d(truth[name])):
            label = f"{name}[{i}]" if name == "beta" else name
            cells = []
            for method in fits:
                mean, sd = (np.atleast_1d(v)[i] for v in summaries[method][name])
                cells.append(f"{mean:8.4f} ± {sd:6.4f}")
            full_mean = np.atleast_1d(summaries["full data"][name][0])[i]
            diffs = []
            for method in worst:
                diff = abs(np.atleast_1d(summaries[method][name][0])[i] - full_mean)
                worst[method] = max(worst[method], diff)
                diffs.append(diff)
            print(
                f"{label:<10} {true:7.3f} {cells[0]:>17} {cells[1]:>17} {cells[2]:>17}"
                f" {diffs[0]:14.4f} {diffs[1]:11.4f}"
            )
    print(
        f"\nLargest difference in posterior means from full-data ADVI: streaming "
        f"{worst['streaming']:.4f}, in-memory pm.Minibatch {worst['in-memory']:.4f}"
    )

    plot(trees, args.out)
    print(f"Posterior densities of the three fits saved to {args.out}")


def plot(trees: dict, out: Path):
    """Save ArviZ's posterior densities of the fits, one color per fit; return the plot."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Constrained layout makes room for each title above the tick labels of the row before it;
    # the means are in the printed table, and three of them written on a plot would overlap.
    collection = az.plot_dist(
        trees,
        backend="matplotlib",
        visuals={"point_estimate_text": False},
        figure_kwargs={"layout": "constrained"},
    )
    collection.add_legend("model")
    collection.savefig(out)
    return collection


if __name__ == "__main__":
    main()
