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
"""Does prefetching hide a slow source? Streaming ADVI steps/s with and without a reader thread.

Run ``.venv/bin/python benchmarks/bench_prefetch_overlap.py`` (about a minute; ``--quick`` for a
smoke run). It prints one JSON object.

The source is a zero-argument function yielding chunks of ``_CHUNK_ROWS`` rows, which waits
``latency_ms`` before each chunk, as a read from disk or a network store does (the wait releases
the GIL, as file reads and pyarrow's decoding do). The same linear regression is fitted with
``prefetch=0`` (the wait lands on the main thread, between steps) and ``prefetch=16`` (a
background thread waits while the step runs), and, for reference, with no latency. Variants are
interleaved over the repetitions; each figure is the median steps/s of a timed window that
starts after a warm-up, measured through a ``pm.fit`` callback so compilation is excluded.
"""

import argparse
import statistics
import time

import numpy as np

from benchlib import StepClock, print_result

import pymc as pm

_N_ROWS = 100_000
_N_FEATURES = 10
_BATCH_SIZE = 256
_CHUNK_ROWS = 4_096
_LATENCY_MS = 1.0  # per 4,096-row chunk: about 62 µs per batch of 256, half a step
_STEPS = 4_000
_WARMUP = 300
_REPEATS = 3


def _chunks(X, y, latency_s):
    def read():
        for start in range(0, len(y), _CHUNK_ROWS):
            if latency_s:
                time.sleep(latency_s)
            yield X[start : start + _CHUNK_ROWS], y[start : start + _CHUNK_ROWS]

    return read


def _steps_per_second(X, y, *, latency_ms, prefetch, steps, warmup) -> float:
    source = _chunks(X, y, latency_ms / 1000)
    with pm.Model():
        X_mb, y_mb = pm.Minibatch(
            source, batch_size=_BATCH_SIZE, streaming=True, prefetch=prefetch, random_seed=1
        )
        beta = pm.Normal("beta", 0, 1, shape=_N_FEATURES)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("y", X_mb @ beta, sigma, observed=y_mb, total_size=len(y))
        clock = StepClock(warmup, steps)
        pm.fit(warmup + steps, progressbar=False, random_seed=1, callbacks=[clock.callback])
    return steps / clock.seconds()


def run(*, n_rows=_N_ROWS, steps=_STEPS, warmup=_WARMUP, repeats=_REPEATS) -> dict:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_rows, _N_FEATURES))
    y = X @ np.linspace(-1, 1, _N_FEATURES) + rng.normal(size=n_rows)
    variants = {
        "no_latency_prefetch0": (0.0, 0),
        "latency_prefetch0": (_LATENCY_MS, 0),
        "latency_prefetch16": (_LATENCY_MS, 16),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for repeat in range(repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            latency_ms, prefetch = variants[name]
            samples[name].append(
                _steps_per_second(
                    X, y, latency_ms=latency_ms, prefetch=prefetch, steps=steps, warmup=warmup
                )
            )
    median = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "benchmark": "prefetch_overlap",
        "steps_per_s": {name: round(value, 1) for name, value in median.items()},
        "steps_per_s_all": {name: [round(v, 1) for v in vs] for name, vs in samples.items()},
        "ratios": {
            "latency_prefetch16/latency_prefetch0": round(
                median["latency_prefetch16"] / median["latency_prefetch0"], 3
            ),
            "latency_prefetch16/no_latency_prefetch0": round(
                median["latency_prefetch16"] / median["no_latency_prefetch0"], 3
            ),
        },
        "params": {
            "n_rows": n_rows,
            "n_features": _N_FEATURES,
            "batch_size": _BATCH_SIZE,
            "chunk_rows": _CHUNK_ROWS,
            "latency_ms_per_chunk": _LATENCY_MS,
            "latency_us_per_batch": round(_LATENCY_MS * 1000 * _BATCH_SIZE / _CHUNK_ROWS, 1),
            "steps": steps,
            "warmup": warmup,
            "repeats": repeats,
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    args = parser.parse_args(argv)
    options = {"n_rows": 20_000, "steps": 300, "warmup": 50, "repeats": 1} if args.quick else {}
    print_result(run(**options), quick=args.quick)


if __name__ == "__main__":
    main()
