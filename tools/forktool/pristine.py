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
"""The pristine tree: an sdist unpacked as released, the baseline the fork is measured against.

``.fork/pristine/<distribution>/`` holds no patch and no file of ours. It is unpacked once per
pinned sdist: a stamp beside it records the sha256 it was unpacked from.
"""

import shutil

from pathlib import Path

from forktool.layout import Distribution
from forktool.sdist import pristine_files

__all__ = ["ensure_pristine"]


def _stamp_path(dist: Distribution) -> Path:
    return dist.pristine_dir.with_name(f"{dist.name}.sha256")


def ensure_pristine(dist: Distribution) -> Path:
    """Unpack ``dist``'s verified sdist into its pristine tree unless it is there; return it."""
    stamp = _stamp_path(dist)
    if dist.pristine_dir.is_dir() and stamp.exists() and stamp.read_text() == dist.sha256:
        return dist.pristine_dir
    if dist.pristine_dir.exists():
        shutil.rmtree(dist.pristine_dir)
    stamp.unlink(missing_ok=True)
    for relative, content in pristine_files(dist).items():
        target = dist.pristine_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    stamp.write_text(dist.sha256)
    return dist.pristine_dir
