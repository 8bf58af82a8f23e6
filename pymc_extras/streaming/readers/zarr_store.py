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
"""A local Zarr store that reads only the files inside its folder: no symbolic link out of it.

Imported when a :class:`~pymc_extras.streaming.ZarrSource` is built, with zarr.
"""

import os

from pathlib import Path

from pymc.exceptions import SourceDataError
from zarr.storage import LocalStore

__all__: list[str] = []  # helpers of the package: imported by name, not exported


class ConfinedLocalStore(LocalStore):
    """A read-only :class:`zarr.storage.LocalStore` whose keys must resolve inside its root.

    A chunk or metadata file that is a symbolic link to a file outside the store's folder (a
    crafted store that would stream ``/etc/...`` or another user's data) is refused when it is
    read, naming the key and where it points; links that stay inside the store are followed.
    Each read resolves its key's path first, a few ``lstat`` calls, small beside reading and
    decoding a chunk.
    """

    def __init__(self, root: Path | str, *, read_only: bool = True):
        super().__init__(root, read_only=read_only)
        self._real_root = os.path.realpath(self.root)

    def _check_inside(self, key: str) -> None:
        target = os.path.realpath(os.path.join(self._real_root, key))
        if os.path.commonpath([target, self._real_root]) != self._real_root:
            raise SourceDataError(
                f"{key!r} of the Zarr store {str(self.root)!r} is a symbolic link to {target!r}, "
                "outside the store. A source reads only the store it is given: copy the data "
                "into the store, or pass allow_external=True to ZarrSource if you trust the "
                "store's links."
            )

    async def get(self, key, prototype=None, byte_range=None):
        self._check_inside(key)
        return await super().get(key, prototype, byte_range)

    def get_sync(self, key, *, prototype=None, byte_range=None):
        self._check_inside(key)
        return super().get_sync(key, prototype=prototype, byte_range=byte_range)

    async def get_partial_values(self, prototype, key_ranges):
        key_ranges = list(key_ranges)
        for key, _ in key_ranges:
            self._check_inside(key)
        return await super().get_partial_values(prototype, key_ranges)


def confine(node):
    """``node`` (a zarr array or group) opened again on a :class:`ConfinedLocalStore`.

    Nodes of other stores (object stores, memory, zip files) have no symbolic links to follow,
    and are returned as they are.
    """
    import zarr

    store = node.store
    if not isinstance(store, LocalStore) or isinstance(store, ConfinedLocalStore):
        return node
    confined = ConfinedLocalStore(store.root)
    if isinstance(node, zarr.Group):
        return zarr.open_group(confined, path=node.path, mode="r")
    return zarr.open_array(confined, path=node.path)
