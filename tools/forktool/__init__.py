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
"""Assemble the streaming fork of PyMC from pinned upstream sources and our patch set.

Standard library only: it runs on whatever ``python3`` the machine has (3.11 here) and creates
the fork's virtual environment on a Python >= 3.12, which PyMC 6 requires.
"""

import subprocess

from pathlib import Path

__all__ = ["ForkError", "run_checked"]

# How much of a failed command's output an error message quotes: its end says what went wrong.
_OUTPUT_TAIL = 3000


class ForkError(Exception):
    """A problem the user must fix; its message says what was found and what to do."""


def run_checked(
    command: list[str], what: str, *, cwd: Path | None = None, hint: str = ""
) -> subprocess.CompletedProcess:
    """Run ``command``; if it fails, raise a ForkError saying ``what`` failed and why."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-_OUTPUT_TAIL:]
        raise ForkError(
            f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{output}"
            + (f"\n{hint}" if hint else "")
        )
    return result
