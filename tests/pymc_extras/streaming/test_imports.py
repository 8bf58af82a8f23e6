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
    provider = "pymc_extras.inference.pathfinder.full_data"
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
    assert "pymc_extras.streaming.readers.npy_files" in loaded
    assert not loaded & {
        "pymc_extras.streaming.readers.arrow_files",
        "pymc_extras.streaming.readers.dask_source",
        "pymc_extras.streaming.passes.full_data",
        "pymc_extras.streaming.passes.minibatched_data",
        "pymc_extras.inference.pathfinder.full_data",
    }


def test_every_public_name_of_the_subpackages_is_an_attribute_of_the_package():
    import importlib

    import pymc_extras.streaming as streaming

    assert streaming.__all__ == sorted(streaming.__all__)
    assert set(streaming.__all__) <= set(dir(streaming))
    for name in streaming.__all__:
        home = importlib.import_module(streaming._homes()[name])
        assert name in home.__all__
        assert getattr(streaming, name) is getattr(home, name)
    assert "NpySource" in streaming.__all__


def test_a_module_added_to_a_subpackage_is_found_without_an_edit(tmp_path, monkeypatch):
    import pymc_extras.streaming as streaming
    import pymc_extras.streaming.readers as readers

    (tmp_path / "toy_files.py").write_text(
        '__all__ = ["ToySource", "imported"]\n\nfrom os import sep as imported\n\n\n'
        "class ToySource:\n    pass\n"
    )
    monkeypatch.setattr(readers, "__path__", [*readers.__path__, str(tmp_path)])
    streaming._homes.cache_clear()
    try:
        assert streaming._homes()["ToySource"] == "pymc_extras.streaming.readers.toy_files"
        assert "imported" not in streaming._homes()  # a re-export is found at its home only
        assert streaming.ToySource.__module__ == "pymc_extras.streaming.readers.toy_files"
    finally:
        monkeypatch.undo()
        streaming._homes.cache_clear()
        vars(streaming).pop("ToySource", None)
        sys.modules.pop("pymc_extras.streaming.readers.toy_files", None)


def test_an_unknown_name_says_which_package_lacks_it():
    import pytest

    import pymc_extras.streaming as streaming

    with pytest.raises(AttributeError, match=r"'pymc_extras\.streaming' has no attribute 'Nope'"):
        streaming.Nope
