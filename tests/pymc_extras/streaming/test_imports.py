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
"""``import pymc_extras`` loads the streaming package's name only; modules come when used."""

import json
import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def _streaming_modules(modules: set[str]) -> set[str]:
    """The modules of the streaming packages, and the Pathfinder provider, that were loaded."""
    provider = "pymc_extras.inference.pathfinder.streaming"
    prefixes = ("pymc.streaming", "pymc_extras.streaming")
    return {module for module in modules if module.startswith(prefixes) or module == provider}


def test_import_pymc_extras_loads_no_streaming_module():
    modules = _modules_after("import pymc_extras")
    # The two lazy packages, nothing else: no reader, no pass, no stream engine.
    assert _streaming_modules(modules) == {"pymc.streaming", "pymc_extras.streaming"}
    assert not {m for m in modules if m.split(".")[0] in {"h5py", "zarr", "dask"}}


def test_a_reader_loads_its_own_module_only():
    modules = _modules_after("import pymc_extras as pmx\nassert pmx.streaming.NpySource")
    loaded = _streaming_modules(modules) - {"pymc.streaming", "pymc_extras.streaming"}
    assert "pymc_extras.streaming.npy_files" in loaded
    assert not loaded & {
        "pymc_extras.streaming.arrow_files",
        "pymc_extras.streaming.dask_source",
        "pymc_extras.streaming.full_data",
        "pymc_extras.streaming.passes",
        "pymc_extras.inference.pathfinder.streaming",
    }
