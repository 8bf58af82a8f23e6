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
"""Fixtures that PyMC's test files use but its source distribution does not ship.

The pymc sdist includes ``tests/test_data.py`` without ``tests/conftest.py``, so the fixtures
``seeded_test`` and ``strict_float32`` are missing. This plugin provides them, together with the
PyTensor settings PyMC's own suite runs under, so that upstream's tests run on the fork as they
do in PyMC's CI. Loaded with ``-p pymc_test_fixtures`` by ``make test``.
"""

import numpy as np
import pytensor
import pytest

__all__ = ["pytensor_test_settings", "pytest_configure", "seeded_test", "strict_float32"]

# The seed PyMC's suite uses for tests that draw from NumPy's global generator.
_PYMC_TEST_SEED = 20160911


def pytest_configure(config: pytest.Config) -> None:
    """Find PyMC's test helpers (``from tests.list_feed import ...``) in the tree pytest runs in.

    In PyMC's checkout ``tests`` is PyMC's own folder. In the fork's environment the editable
    install of pymc-extras puts pymc-extras' ``tests`` package on the path first, so this tree's
    ``tests`` folder goes ahead of it in that package's search path.
    """
    own = config.rootpath / "tests"
    if not own.is_dir():
        return
    try:
        import tests
    except ImportError:  # no other ``tests`` package: this tree's folder is found as it is
        return
    if str(own) not in list(tests.__path__):
        tests.__path__.insert(0, str(own))


@pytest.fixture(autouse=True)
def pytensor_test_settings():
    """Fail on graph-rewrite errors and explain PyTensor errors in full, as PyMC's CI does."""
    with pytensor.config.change_flags(on_opt_error="raise", exception_verbosity="high"):
        yield


@pytest.fixture
def strict_float32():
    """Under ``floatX=float32``, make any float64 upcast in the graph an error."""
    if pytensor.config.floatX == "float32":
        with pytensor.config.change_flags(warn_float64="raise"):
            yield
    else:
        yield


@pytest.fixture
def seeded_test():
    """Seed NumPy's global generator for tests written against it."""
    np.random.seed(_PYMC_TEST_SEED)
