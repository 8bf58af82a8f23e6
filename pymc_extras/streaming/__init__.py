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
"""Streaming data for PyMC models: readers, and what runs on the data they read.

The readers are sources for ``pm.Minibatch(source, batch_size=..., streaming=True)``; PyMC also
finds them by itself for HDF5 datasets, Zarr arrays, Dask collections, pyarrow datasets and
pymc-extras' ``DataLoader`` (:mod:`pymc_extras.streaming.readers.adapters`).

Three subpackages, one per layer: :mod:`~pymc_extras.streaming.readers` (the sources),
:mod:`~pymc_extras.streaming.passes` (exact passes over the full data of a minibatched model)
and :mod:`~pymc_extras.streaming.workflow` (what comes after a fit). The public names of their
modules (each module's ``__all__``) are attributes of this package too, found by reading the
modules' source, not by running it: a module is imported on the first use of one of its names,
so importing this package imports no reader and no optional dependency, and a new module in a
subpackage needs no edit here.
"""

import ast
import functools
import importlib
import importlib.util
import pkgutil
import re

from pathlib import Path

_ALL = re.compile(r"^__all__\s*(?::[^=]*)?=\s*(\[[^\]]*\])", re.MULTILINE)
_DEFINED = re.compile(r"^(?:class\s+|def\s+|async\s+def\s+)?([A-Za-z_]\w*)\s*[(:=]", re.MULTILINE)


def _exports(path: str) -> list[str]:
    """The names of the module at ``path``'s ``__all__`` that it defines itself (not re-exports).

    Read from the source with two patterns, not parsed: parsing every module of the subpackages
    would cost more than importing some of them.
    """
    source = Path(path).read_text(encoding="utf-8")
    found = _ALL.search(source)
    if found is None:
        return []
    defined = set(_DEFINED.findall(source))
    return [name for name in ast.literal_eval(found.group(1)) if name in defined]


@functools.cache
def _subpackages() -> tuple[str, ...]:
    """The subpackages of this package (not its modules), found in its folder."""
    return tuple(sorted(module.name for module in pkgutil.iter_modules(__path__) if module.ispkg))


@functools.cache
def _homes() -> dict[str, str]:
    """Each public name of the subpackages' modules, and the module that defines it."""
    homes: dict[str, str] = {}
    for subpackage in _subpackages():
        package = importlib.import_module(f"{__name__}.{subpackage}")
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if module.ispkg or module.name.rpartition(".")[2].startswith("_"):
                continue
            spec = importlib.util.find_spec(module.name)
            if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
                continue
            for name in _exports(spec.origin):
                homes.setdefault(name, module.name)
    return homes


def __getattr__(name: str):
    value: object
    if name == "__all__":
        value = sorted(_homes())
    elif name in _subpackages():
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _homes():
        value = getattr(importlib.import_module(_homes()[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*_homes(), *_subpackages()})
