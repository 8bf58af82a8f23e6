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
"""The user guide's Pathfinder example runs as written and recovers the coefficients."""

import re

from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"


def test_pathfinder_example_runs_and_recovers_the_coefficients():
    section = GUIDE.read_text().split("## Pathfinder on streaming data", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(block, str(GUIDE), "exec"), namespace)
    means = namespace["idata"].posterior["beta"].mean(("chain", "draw")).values
    np.testing.assert_allclose(means, namespace["true_beta"], atol=0.05)
