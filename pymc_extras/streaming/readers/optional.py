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
"""Optional packages of the file and Dask readers, imported when a reader is first built."""

import importlib

from types import ModuleType

__all__: list[str] = []  # helpers of the package: imported by name, not exported


def import_optional(module: str, *, extra: str, reader: str) -> ModuleType:
    """Import ``module``, or say which package and which extra of the fork to install.

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"pyarrow.dataset"``; its top-level package is the one named.
    extra : str
        The extra of pymc-extras that installs it, e.g. ``"parquet"`` for
        ``pip install "pymc-extras[parquet]"``.
    reader : str
        What needs it, for the message, e.g. ``"ParquetSource"``.

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed, naming the package and the extra.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        package = module.split(".")[0]
        raise ModuleNotFoundError(
            f"{reader} needs the package {package!r}, which is not installed. Install it with "
            f'`pip install {package}`, or `pip install "pymc-extras[{extra}]"` for the {extra} '
            "reader and its dependencies.",
            name=package,
        ) from error
