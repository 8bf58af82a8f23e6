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
"""Simulated regression data written to Parquet row group by row group, in bounded memory."""

import json
import os

from pathlib import Path

import numpy as np

__all__ = ["FEATURES", "regression_parquet"]

FEATURES = 10
_ROW_GROUP = 1_048_576  # pyarrow.parquet.write_table's default


def regression_parquet(
    path: str | os.PathLike,
    rows: int,
    *,
    features: int = FEATURES,
    kind: str = "linear",
    seed: int = 2026,
    row_group_size: int = _ROW_GROUP,
) -> dict:
    """Write ``rows`` rows of a linear, logistic or Poisson regression to ``path``, unless there.

    Columns ``x0``… ``x{features-1}`` (standard normal, float64) and ``y`` (float64 for
    ``"linear"``, int64 0/1 for ``"logistic"``, int64 counts for ``"poisson"``, whose
    coefficients are scaled by ``0.1`` so that the rates stay moderate). The true coefficients are stored in a JSON file
    next to the data and returned: ``{"intercept", "beta", "sigma", "rows", "kind"}``.
    Memory: one row group at a time.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    truth_file = path.with_suffix(".truth.json")
    if path.exists() and truth_file.exists():
        truth = json.loads(truth_file.read_text())
        if truth["rows"] == rows and truth["kind"] == kind and len(truth["beta"]) == features:
            return truth
    rng = np.random.default_rng(seed)
    truth = {
        "kind": kind,
        "rows": rows,
        "intercept": 0.5,
        "beta": np.round(
            rng.normal(0, 1, features) * (0.1 if kind == "poisson" else 1), 2
        ).tolist(),
        "sigma": 1.0 if kind == "linear" else None,
    }
    names = [f"x{j}" for j in range(features)]
    partial = path.with_suffix(".partial")
    with pq.ParquetWriter(partial, _schema(pa, names, kind)) as writer:
        for start in range(0, rows, row_group_size):
            n = min(row_group_size, rows - start)
            X = rng.normal(size=(n, features))
            eta = truth["intercept"] + X @ np.asarray(truth["beta"])
            if kind == "linear":
                y = eta + rng.normal(0, truth["sigma"], n)
            elif kind == "logistic":
                y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)
            else:
                y = rng.poisson(np.exp(eta))
            columns = {name: X[:, j] for j, name in enumerate(names)} | {"y": y}
            writer.write_table(pa.table(columns), row_group_size=row_group_size)
    partial.rename(path)  # an interrupted run leaves no half-written dataset behind
    truth_file.write_text(json.dumps(truth))
    return truth


def _schema(pa, names, kind):
    y_type = pa.float64() if kind == "linear" else pa.int64()
    return pa.schema([(name, pa.float64()) for name in names] + [("y", y_type)])
