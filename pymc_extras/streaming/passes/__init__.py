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
"""Exact passes over the full data of a minibatched model, read in chunks.

:mod:`.minibatched_data` finds a model's minibatched data and builds its full-data model,
:mod:`.pass_mode` compiles the passes, :mod:`.pass_runner` runs them here or on a Dask cluster
(:mod:`.dask_recipes`: how a worker reads its partition), and :mod:`.full_data` gives the log
density and gradient of the full data at many points in one pass (:class:`FullDataLogp`).
"""

# fork-only: begin
# This package took the name of the fork's module pymc_extras.streaming.passes, now
# pymc_extras.streaming.passes.minibatched_data: its names still come from here, with a warning.
_MOVED = "pymc_extras.streaming.passes.minibatched_data"


def __getattr__(name: str):
    import importlib
    import warnings

    module = importlib.import_module(_MOVED)
    if name not in module.__all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"{__name__}.{name} moved to {_MOVED}.{name}: import from there",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(module, name)


# fork-only: end
