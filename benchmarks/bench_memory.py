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
"""The fork's memory against pristine PyMC: the import floor, and a Parquet fit at defaults.

Run ``.venv/bin/python benchmarks/bench_memory.py`` (about 10 minutes on a 2-core machine,
plus a minute to write the 10M-row file on the first run; ``--quick`` for a smoke run on small
files). It prints one JSON object on stdout. Every figure comes from a fresh process.

*Pristine* is the pymc and pymc-extras sdists of the pins (``.fork/downloads/``), unpacked to a
temporary folder and put first on ``PYTHONPATH``, with the fork's environment for everything
else: the same PyTensor, Numba, pyarrow and ArviZ. Each measurement runs twice: with JAX
importable, when it is installed (``arviz_base`` then imports it with ``pymc_extras``: see the
guide's Memory section), and as if it were not (``sys.modules["jax"] = None`` before any
import, which ArviZ and PyTensor take as "not installed").

``import``
    ``import pymc, pymc_extras``: resident memory (``VmRSS``) and its anonymous part
    (``RssAnon``; the rest maps shared libraries and files, pages the page cache may share), for
    pristine and the fork, and the modules the fork's import adds to pristine's.
    ``pristine_arviz_base`` measures a change proposed to pymc-extras: pristine, with
    ``pathfinder/idata.py`` importing ``arviz_base`` instead of the ``arviz`` meta-package
    (which imports ArviZ's plotting stack and matplotlib for one ``from_dict``).
    ``fork_arviz_lazy`` estimates the change proposed to pymc-extras to import ArviZ only where
    it is used, as PyMC 6 does: the fork with empty stand-ins for the ArviZ packages.
``fit``
    The process's peak resident memory (``VmHWM``) and peak anonymous memory (sampled every
    20 ms) through ``pm.fit`` at its defaults (ADVI, batches of 1,024) of a linear regression of
    ten features. ``pristine_floor``: pristine PyMC fits it from 2,048 rows in memory
    (``pm.Minibatch``), as many steps as one epoch of the large file; the floor that PyMC, the
    imports and compiling the step take without any data. ``fork_floor``: the same script on the
    fork. ``parquet_<rows>``: the fork streams one epoch of a Parquet file of ``rows`` rows
    (``ParquetSource``, ``pm.Minibatch(..., streaming=True)``, default options);
    ``_arviz_lazy`` the large file's fit with the stand-ins for ArviZ (a fit never calls
    ArviZ, and JAX then stays unimported, so the mode makes no difference there). Figures before
    the fit (imports and model) and the fit's wall time, compilation included, come with each.
    Each fit first runs once for 300 steps, so that all of them load their compiled step from
    PyTensor's caches.
    The issue's targets: the large file's peak at most 450 MB without JAX, and at most 100 MB
    above ``pristine_floor`` with it; ``flat_in_rows`` is the ratio of the large file's peak to
    the small one's.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

from pathlib import Path

from benchlib import machine, print_result
from datasets import FEATURES, regression_parquet

ROOT = Path(__file__).resolve().parents[1]
_DATA = Path(__file__).parent / "data"
_BATCH = 1_024
_FLOOR_ROWS = 2_048
_WARMUP_STEPS = 300
_TARGET_WITHOUT_JAX_MB = 450
_TARGET_OVER_PRISTINE_MB = 100
_STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


def _status() -> dict[str, float]:
    """Resident memory of the process from ``/proc/self/status``, in MiB."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in _STATUS_KEYS:
                fields[key] = int(value.split()[0]) / 1024
    return fields


class _AnonPeak:
    """Samples ``RssAnon`` in a thread: the kernel keeps a peak of the resident set only."""

    def __init__(self, every: float = 0.02):
        self.peak = _status()["RssAnon"]
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, _status()["RssAnon"])

    def __enter__(self) -> "_AnonPeak":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status()["RssAnon"])


def _block_jax_if_asked() -> None:
    if os.environ.get("BENCH_WITHOUT_JAX"):
        # A module set to None in sys.modules cannot be imported: as if JAX were not installed.
        sys.modules["jax"] = None  # type: ignore[assignment]


def _side() -> str:
    import pymc

    return "fork" if "streaming" in pymc.__version__ else "pristine"


def child_import() -> None:
    """``import pymc, pymc_extras`` and print the memory and the modules as JSON."""
    _block_jax_if_asked()
    import pymc  # noqa: F401
    import pymc_extras  # noqa: F401

    jax = sys.modules.get("jax")
    result = {"side": _side(), "jax_imported": jax is not None and hasattr(jax, "__version__")}
    result |= {"mb": _status(), "modules": sorted(sys.modules)}
    json.dump(result, sys.stdout)


def _linear(X, y, total_size: int | None = None):
    import pymc as pm

    with pm.Model() as model:
        intercept = pm.Normal("intercept", 0, 5)
        beta = pm.Normal("beta", 0, 5, shape=FEATURES)
        sigma = pm.HalfNormal("sigma", 2)
        pm.Normal("y", intercept + X @ beta, sigma, observed=y, total_size=total_size)
    return model


def child_fit(path: str, steps: int, total_size: int) -> None:
    """ADVI at ``pm.fit``'s defaults; print the memory as JSON (run in a fresh process).

    ``path`` "floor" fits ``_FLOOR_ROWS`` rows in memory with upstream's ``pm.Minibatch``, on
    pristine or on the fork, whichever is imported, scaled to ``total_size`` rows; a Parquet
    file is streamed by the fork, ``steps`` 0 meaning one epoch of it.
    """
    _block_jax_if_asked()
    import numpy as np

    import pymc as pm
    import pymc_extras  # noqa: F401  (the fork's fit imports it for its reader)

    if path == "floor":
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(_FLOOR_ROWS, FEATURES)), rng.normal(size=_FLOOR_ROWS)
        model = _linear(*pm.Minibatch(X, y, batch_size=_BATCH), total_size=total_size)
    else:
        from pymc_extras.streaming import ParquetSource

        columns = [[f"x{j}" for j in range(FEATURES)], "y"]
        source = ParquetSource(path, columns=columns)
        steps = steps or source.num_rows // _BATCH
        model = _linear(*pm.Minibatch(source, batch_size=_BATCH, streaming=True, random_seed=0))
    before = _status()
    start = time.perf_counter()
    with model, _AnonPeak() as anon:
        pm.fit(steps, progressbar=False, random_seed=0)
    seconds = time.perf_counter() - start
    after = _status()
    jax = sys.modules.get("jax")
    result = {
        "side": _side(),
        "jax_imported": jax is not None and hasattr(jax, "__version__"),
        "steps": steps,
        "fit_seconds": round(seconds, 2),
        "before_fit_mb": before,
        "after_fit_mb": after,
        "peak_rss_mb": after["VmHWM"],
        "peak_anon_mb": anon.peak,
    }
    json.dump(result, sys.stdout)


def _run_child(args: list[str], env: dict) -> dict:
    command = [sys.executable, __file__, *args]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tempfile.gettempdir(),  # so no folder of this repository shadows a package
    )
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pristine_path(workdir: Path) -> str:
    """The pymc and pymc-extras sdists of the pins, unpacked; a ``PYTHONPATH`` of them."""
    trees = []
    for pattern in ("pymc-*.tar.gz", "pymc_extras-*.tar.gz"):
        [sdist] = sorted((ROOT / ".fork" / "downloads").glob(pattern))
        with tarfile.open(sdist) as tar:
            tar.extractall(workdir, filter="data")
        trees.append(workdir / sdist.name.removesuffix(".tar.gz"))
    return os.pathsep.join(str(tree) for tree in trees)


def _proposed_path(workdir: Path) -> str | None:
    """Pristine with the import proposed to pymc-extras; None if its line is not there.

    ``pymc_extras/inference/pathfinder/idata.py`` imports the ``arviz`` meta-package, and with
    it ArviZ's plotting stack and matplotlib, for ``az.from_dict``, which ``arviz_base`` has.
    """
    path = _pristine_path(workdir)
    [extras] = [Path(tree) for tree in path.split(os.pathsep) if "extras" in Path(tree).name]
    idata = extras / "pymc_extras" / "inference" / "pathfinder" / "idata.py"
    text = idata.read_text()
    if "\nimport arviz as az\n" not in text:
        return None
    idata.write_text(text.replace("\nimport arviz as az\n", "\nimport arviz_base as az\n"))
    return path


_STAND_IN = """def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return type(name, (), {})
"""


def _arviz_stand_ins(workdir: Path) -> str:
    """Empty ``arviz``, ``arviz_base`` and ``arviz_stats`` packages; a ``PYTHONPATH`` of them.

    Importing them imports nothing, as if pymc-extras imported ArviZ only where it uses it, as
    PyMC 6 does (the change proposed to pymc-extras): a fit never calls ArviZ.
    """
    for package in ("arviz", "arviz_base", "arviz_stats"):
        (workdir / package).mkdir(parents=True)
        (workdir / package / "__init__.py").write_text(_STAND_IN)
    (workdir / "arviz_stats" / "accessors.py").write_text("")
    return str(workdir)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _imports(envs: dict[str, dict], repetitions: int) -> dict:
    runs: dict[str, list[dict]] = {side: [] for side in envs}
    for _ in range(repetitions):
        for side, env in envs.items():
            runs[side].append(_run_child(["--child-import"], env))
    out: dict = {}
    for side, side_runs in runs.items():
        out[side] = {
            "rss_mb": _median([run["mb"] for run in side_runs], "VmRSS"),
            "anon_mb": _median([run["mb"] for run in side_runs], "RssAnon"),
            "file_mb": _median([run["mb"] for run in side_runs], "RssFile"),
            "modules": len(side_runs[0]["modules"]),
            "jax_imported": side_runs[0]["jax_imported"],
            "side": side_runs[0]["side"],
        }
    out["fork_minus_pristine"] = {
        key: out["fork"][key] - out["pristine"][key] for key in ("rss_mb", "anon_mb", "file_mb")
    }
    fork, pristine = (set(runs[side][0]["modules"]) for side in ("fork", "pristine"))
    out["modules_fork_adds"] = sorted(fork - pristine)
    out["modules_fork_lacks"] = sorted(pristine - fork)
    if "pristine_arviz_base" in out:
        out["arviz_base_proposal_saves"] = {
            key: out["pristine"][key] - out["pristine_arviz_base"][key]
            for key in ("rss_mb", "anon_mb", "file_mb", "modules")
        }
    return out


def _fits(envs: dict[str, dict], paths: dict[str, Path], rows: int) -> dict:
    """The fits; ``envs`` has "pristine", "fork" and "fork_arviz_lazy"."""
    # Warm-ups: PyTensor's and Numba's caches then hold what each fit compiles, on both sides,
    # so no figure includes compiling from scratch (which peaks 100-200 MB higher).
    # The number of rows is a constant of the compiled graph (the likelihood's scaling), so
    # each size is warmed up.
    total, steps = str(rows), str(rows // _BATCH)
    warmup = str(_WARMUP_STEPS)
    for side in ("pristine", "fork"):
        _run_child(["--child-fit", "floor", warmup, total], envs[side])
    for path in paths.values():
        _run_child(["--child-fit", str(path), warmup, "0"], envs["fork"])
    out = {
        "pristine_floor": _run_child(["--child-fit", "floor", steps, total], envs["pristine"]),
        "fork_floor": _run_child(["--child-fit", "floor", steps, total], envs["fork"]),
    }
    for label, path in paths.items():
        out[f"parquet_{label}"] = _run_child(["--child-fit", str(path), "0", "0"], envs["fork"])
    label, path = list(paths.items())[-1]
    lazy = _run_child(["--child-fit", str(path), "0", "0"], envs["fork_arviz_lazy"])
    out[f"parquet_{label}_arviz_lazy"] = lazy
    small, large = (out[f"parquet_{label}"]["peak_rss_mb"] for label in paths)
    floor = out["pristine_floor"]["peak_rss_mb"]
    out["large_over_pristine_floor_mb"] = large - floor
    out["fork_floor_over_pristine_floor_mb"] = out["fork_floor"]["peak_rss_mb"] - floor
    out["flat_in_rows"] = large / small
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small files, one repetition")
    parser.add_argument("--repetitions", type=int, default=3, help="of the import figures")
    parser.add_argument("--child-import", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--child-fit", nargs=3, metavar=("PATH", "STEPS", "ROWS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child_import:
        child_import()
        return
    if args.child_fit:
        child_fit(args.child_fit[0], int(args.child_fit[1]), int(args.child_fit[2]))
        return

    sizes = (
        {"100k": 100_000, "300k": 300_000} if args.quick else {"1M": 1_000_000, "10M": 10_000_000}
    )
    _DATA.mkdir(exist_ok=True)
    paths = {label: _DATA / f"linear_{label}.parquet" for label in sizes}
    for label, rows in sizes.items():
        regression_parquet(paths[label], rows)
    floor_steps = max(sizes.values()) // _BATCH
    repetitions = 1 if args.quick else args.repetitions
    modes = {"with_jax": {}, "without_jax": {"BENCH_WITHOUT_JAX": "1"}}
    if importlib.util.find_spec("jax") is None:
        modes = {"without_jax": {}}  # JAX is not installed: the one mode there is
    result: dict = {
        "benchmark": "memory",
        "params": {
            "rows": sizes,
            "features": FEATURES,
            "batch_size": _BATCH,
            "floor_rows": _FLOOR_ROWS,
            "floor_steps": floor_steps,
            "import_repetitions": repetitions,
            **machine(),
        },
        "load_average": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as workdir:
        pristine = {"PYTHONPATH": _pristine_path(Path(workdir) / "pristine")}
        proposed = _proposed_path(Path(workdir) / "proposed")
        stand_ins = {"PYTHONPATH": _arviz_stand_ins(Path(workdir) / "stand_ins")}
        for mode, env in modes.items():
            envs = {"pristine": {**env, **pristine}, "fork": env}
            proposal = {"pristine_arviz_base": {**env, "PYTHONPATH": proposed}} if proposed else {}
            lazy = {"fork_arviz_lazy": {**env, **stand_ins}}
            result[mode] = {
                "import": _imports(envs | proposal | lazy, repetitions),
                "fit": _fits(envs | lazy, paths, max(sizes.values())),
            }
    large = f"parquet_{list(sizes)[-1]}"
    targets: dict = {}
    if "without_jax" in result:
        peak = result["without_jax"]["fit"][large]["peak_rss_mb"]
        targets["without_jax_peak_mb"] = {"value": peak, "target": _TARGET_WITHOUT_JAX_MB}
    if "with_jax" in result:
        over = result["with_jax"]["fit"]["large_over_pristine_floor_mb"]
        targets["with_jax_over_pristine_floor_mb"] = {
            "value": over,
            "target": _TARGET_OVER_PRISTINE_MB,
        }
    for target in targets.values():
        target["met"] = target["value"] <= target["target"]
    result["targets"] = targets
    result["load_average_after"] = os.getloadavg()
    print_result(result, quick=args.quick)


if __name__ == "__main__":
    main()
