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
"""``make demo`` runs as the README says, on a small file: it prints its figures and a plot."""

import re
import subprocess
import sys

from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "demo" / "larger_than_memory.py"


def test_demo_writes_fits_and_reports(tmp_path):
    out = tmp_path / "plot.png"
    command = [
        sys.executable,
        str(DEMO),
        "--rows",
        "200000",
        "--epochs",
        "3",
        "--batch-size",
        "128",
    ]
    command += ["--data-dir", str(tmp_path), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    assert "200,000 rows x 10 features" in report and "MB on disk" in report
    assert re.search(r"peak memory \(RSS\) of this process: [\d,]+ MB", report)
    assert re.search(r"[\d.]+ million rows/s", report)
    worst = float(re.search(r"Largest \|posterior mean - true value\|: ([\d.]+)", report)[1])
    assert worst < 0.15  # 200,000 rows: posterior sds are about 0.006
    assert out.stat().st_size > 10_000
    assert (tmp_path / "logistic_200000.parquet").exists()
    # The demo shows no warning a user cannot act on: none at all.
    assert [line for line in done.stderr.splitlines() if "Warning" in line] == []
