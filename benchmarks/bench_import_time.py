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
"""What the fork adds to ``import pymc``: the fork against pristine PyMC, interleaved.

Each repetition starts a fresh interpreter twice, once importing the fork and once importing
the pristine pymc sdist (unpacked from the download cache, put first on ``PYTHONPATH``), with
the same PyTensor, numpy and everything else, and reads ``python -X importtime``'s total for
``pymc``. The PyTensor compile cache is warm for both. Reports the medians and their
difference, which the target bounds at 20 ms, the modules the fork's import loads that the
pristine import does not, and those modules' own ("self") import time, which is what the
difference is made of and is far less noisy on a loaded machine.

    .venv/bin/python benchmarks/bench_import_time.py [--repetitions 15]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile

from pathlib import Path

from benchlib import machine, print_result

ROOT = Path(__file__).resolve().parents[1]

_REPORT_MODULES = "import sys, json; import pymc; print(json.dumps(sorted(sys.modules)))"


def _pristine_tree(workdir: Path) -> Path:
    """The pymc sdist of the pins, unpacked; its folder goes first on PYTHONPATH."""
    [sdist] = sorted((ROOT / ".fork" / "downloads").glob("pymc-*.tar.gz"))
    with tarfile.open(sdist) as tar:
        tar.extractall(workdir, filter="data")
    [tree] = [path for path in workdir.iterdir() if path.is_dir()]
    return tree


def _import_times(env: dict | None) -> dict[str, tuple[float, float]]:
    """``{module: (self seconds, cumulative seconds)}`` of one fresh ``import pymc``."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import pymc"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    times = {}
    for line in result.stderr.splitlines():
        fields = [field.strip() for field in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[0].isdigit():
            times[fields[2]] = (int(fields[0]) / 1e6, int(fields[1]) / 1e6)
    if "pymc" not in times:
        raise RuntimeError(f"no import time for pymc in:\n{result.stderr[-2000:]}")
    return times


def _modules(env: dict | None) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_MODULES],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tempfile.gettempdir(),
    )
    return set(json.loads(result.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 repetitions")
    args = parser.parse_args()
    repetitions = 3 if args.quick else args.repetitions

    import os

    with tempfile.TemporaryDirectory() as workdir:
        pristine_env = {**os.environ, "PYTHONPATH": str(_pristine_tree(Path(workdir)))}
        for env in (None, pristine_env):  # warm the compile cache and the file cache
            _import_times(env)
        added = sorted(_modules(None) - _modules(pristine_env))
        fork, pristine, own = [], [], []
        for _ in range(repetitions):
            times = _import_times(None)
            fork.append(times["pymc"][1])
            # The fork's own modules' self time: the part of the difference that load noise
            # on a shared machine does not drown.
            own.append(sum(times[module][0] for module in added if module in times))
            pristine.append(_import_times(pristine_env)["pymc"][1])
    fork_s, pristine_s = statistics.median(fork), statistics.median(pristine)
    print_result(
        {
            "benchmark": "import_time",
            "params": {"repetitions": repetitions, **machine()},
            "median_seconds": {"fork": fork_s, "pristine": pristine_s},
            "added_ms": 1e3 * (fork_s - pristine_s),
            "added_modules_self_ms": 1e3 * statistics.median(own),
            "target_added_ms": 20,
            "runs_seconds": {"fork": fork, "pristine": pristine},
            "modules_added": added,
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
