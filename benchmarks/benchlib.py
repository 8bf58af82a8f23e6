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
"""What the benchmarks share: a step clock that leaves compilation out, and the JSON output."""

import gc
import json
import os
import platform
import sys
import time

from dataclasses import dataclass

__all__ = ["StepClock", "machine", "print_result"]


@dataclass
class StepClock:
    """Times the steps from ``warmup`` completed steps to ``warmup + steps``."""

    warmup: int
    steps: int
    start: float | None = None
    stop: float | None = None

    def tick(self, done: int) -> None:
        """Record the time if ``done`` (steps completed so far) opens or closes the window."""
        if done == self.warmup:
            # A full collection of the compiler's garbage would stall one window at random.
            gc.collect()
            self.start = time.perf_counter()
        elif done == self.warmup + self.steps:
            self.stop = time.perf_counter()

    def callback(self, approx, losses, i: int) -> None:
        """``pm.fit`` callback: called after step ``i``, with ``i`` steps completed."""
        self.tick(i)

    def seconds(self) -> float:
        """Length of the timed window."""
        if self.start is None or self.stop is None:
            raise RuntimeError(
                "the fit ended before the timed window closed (a data stream ran out?); "
                "check that the variant runs warmup + steps steps."
            )
        return self.stop - self.start


def print_result(result: dict, *, quick: bool) -> None:
    """Print a benchmark's figures as one JSON object on stdout."""
    result["params"]["quick"] = quick
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


def machine() -> dict:
    """Versions of what a figure depends on, and the CPUs it ran on, for a result's params."""
    import numpy as np
    import pytensor

    import pymc as pm
    import pymc_extras

    versions = {
        "pymc": pm.__version__,
        "pymc_extras": pymc_extras.__version__,
        "pytensor": pytensor.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    return {"versions": versions, "cpu_count": os.cpu_count()}
