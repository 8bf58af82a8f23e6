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
"""What the repository commits: it must hold no copy of an upstream file, wherever it sits."""

import subprocess

from forktool.layout import Distribution, Layout
from forktool.sdist import digest, pristine_files, sha256_of

__all__ = ["committed_copies"]

# Smaller files (empty __init__.py, one-line stubs) coincide with upstream ones by accident.
_MIN_COPY_BYTES = 512


def committed_copies(layout: Layout, dists: list[Distribution]) -> list[str]:
    """``"<path>: committed copy of upstream <distribution>:<path>"`` for each such file."""
    upstream: dict[str, str] = {}
    for dist in dists:
        for relative, content in pristine_files(dist).items():
            if len(content) >= _MIN_COPY_BYTES:
                upstream.setdefault(digest(content), f"{dist.name}:{relative}")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=layout.root, capture_output=True, text=True, check=True
    ).stdout
    copies = []
    for name in filter(None, listed.split("\0")):
        path = layout.root / name
        if path.is_file() and not path.is_symlink():
            original = upstream.get(sha256_of(path))
            if original:
                copies.append(f"{name}: committed copy of upstream {original}")
    return copies
