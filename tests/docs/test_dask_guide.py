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
"""The user guide's Dask cluster example runs as written, as a script, and fits the data."""

import re
import subprocess
import sys

from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "streaming.md"


def test_dask_cluster_example_runs_as_a_script(tmp_path):
    section = GUIDE.read_text().split("## On a Dask cluster", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    script = tmp_path / "on_a_cluster.py"
    script.write_text(block)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    means = [float(v) for v in done.stdout.strip().splitlines()[-1].strip("[]").split()]
    assert all(abs(m - t) < 0.05 for m, t in zip(means, [1.0, -0.5, 0.25], strict=True)), means
