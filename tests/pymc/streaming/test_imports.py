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
"""``import pymc`` loads the streaming package's name only; readers come when they are used."""

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_pymc_loads_no_reader_and_no_optional_package():
    modules = _modules_after("import pymc")
    ours = {m for m in modules if m.startswith("pymc.streaming")}
    assert ours == {"pymc.streaming"}  # the lazy package, nothing else
    assert not {m for m in modules if m.split(".")[0] in {"pymc_extras", "h5py", "zarr", "dask"}}


def test_pm_streaming_is_an_attribute_and_loads_what_is_used():
    modules = _modules_after("import pymc as pm\nassert pm.streaming.Stream")
    assert "pymc.streaming.stream" in modules and "pymc.streaming.minibatch" not in modules


def test_a_streaming_minibatch_of_arrays_imports_no_reader():
    code = (
        "import numpy as np, pymc as pm\n"
        "pm.Minibatch(np.zeros((10, 2)), batch_size=5, streaming=True)"
    )
    modules = _modules_after(code)
    assert not {m for m in modules if m.split(".")[0] in {"pymc_extras", "h5py", "zarr", "dask"}}


def test_an_unknown_attribute_is_an_attribute_error():
    import pymc as pm

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pm.streaming.Nope
