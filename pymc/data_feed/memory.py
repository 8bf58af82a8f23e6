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
"""How much memory this process may use: the machine's, its cgroup's and its own limit."""

import os

from pathlib import Path

__all__ = ["MEMORY_FRACTION", "check_memory", "memory_limit"]

MEMORY_FRACTION = 0.5
"""An option may hold at most this share of the memory this process may use
(:func:`memory_limit`): beyond it, it is refused before a fit starts, rather than let the fit
grow into a MemoryError or the kernel's OOM killer."""

_PROC_CGROUP = "/proc/self/cgroup"
_PROC_MOUNTINFO = "/proc/self/mountinfo"


def memory_limit() -> int | None:
    """Bytes of memory this process may use, or ``None`` when the system says nothing.

    The smallest of the machine's physical memory, the memory limit of the process's cgroup
    (cgroup v2 ``memory.max``, or v1 ``memory.limit_in_bytes``, of its cgroup and every
    cgroup above it: a container's limit) and its address-space limit
    (``resource.RLIMIT_AS``, ``ulimit -v``). A process that allocates past it is killed by the
    kernel or gets a ``MemoryError``, however much the machine has; options whose memory is
    known up front (prefetched batches, a shuffle window, steps per compiled call) are checked
    against it before a fit starts.

    Each limit that cannot be read (another operating system, no cgroup file system mounted,
    no permission) is left out; ``None`` when none can.

    Examples
    --------
    >>> from pymc.data_feed.memory import memory_limit
    >>> limit = memory_limit()
    >>> limit is None or limit > 0
    True
    """
    limits = [_physical_memory(), _cgroup_limit(), _address_space_limit()]
    known = [limit for limit in limits if limit is not None and limit > 0]
    return min(known) if known else None


def check_memory(option: str, value: int, held: int, what: str, advice: str) -> None:
    """Refuse an option whose memory, ``held`` bytes, could never fit in this process.

    Raises
    ------
    ValueError
        If ``held`` exceeds :data:`MEMORY_FRACTION` of :func:`memory_limit`, naming the
        option, its value, what it would hold and its bytes, then ``advice``.
    """
    memory = memory_limit()
    if memory is None or held <= MEMORY_FRACTION * memory:
        return
    raise ValueError(
        f"{option}={value:,} would hold {what} ({_bytes(held)}), more than half of this "
        f"process's memory ({_bytes(memory)}: the least of the machine's memory, its cgroup's "
        f"limit and its address-space limit, ulimit -v). {advice}"
    )


def _bytes(count: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1000
    raise AssertionError  # pragma: no cover


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _address_space_limit() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _cgroup_limit() -> int | None:
    """The smallest memory limit of the process's cgroup and its ancestors, v1 or v2."""
    try:
        memberships = Path(_PROC_CGROUP).read_text().splitlines()
        mounts = Path(_PROC_MOUNTINFO).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in memberships:
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and not controllers:
            version, name = "cgroup2", "memory.max"
        elif "memory" in controllers.split(","):
            version, name = "cgroup", "memory.limit_in_bytes"
        else:
            continue
        for root, mount_point in _cgroup_mounts(mounts, version):
            limit = _smallest_limit(root, mount_point, group, name)
            if limit is not None:
                limits.append(limit)
    return min(limits) if limits else None


def _cgroup_mounts(mounts: list[str], version: str) -> list[tuple[str, str]]:
    """``(root, mount point)`` of the cgroup file systems that hold the memory controller.

    A line of ``/proc/self/mountinfo`` is ``id parent major:minor root mount-point options
    [optional fields] - type source super-options``.
    """
    found = []
    for line in mounts:
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] != version:
            continue
        if version == "cgroup" and "memory" not in tail[2].split(","):
            continue
        found.append((fields[3], fields[4]))
    return found


def _smallest_limit(root: str, mount_point: str, group: str, name: str) -> int | None:
    """The smallest limit in ``name`` files from the process's cgroup up to the mount point."""
    relative = os.path.relpath(group, root) if group.startswith(root) else "."
    folder = Path(mount_point, relative).resolve() if relative != "." else Path(mount_point)
    top = Path(mount_point)
    if not folder.is_dir():
        folder = top  # a cgroup namespace shows the host's path: the mount is the container's
    limits = []
    while True:
        try:
            text = (folder / name).read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            limits.append(int(text))  # "max" (v2) is no limit; v1 writes no limit as ~2**63
        if folder == top or top not in folder.parents:
            break
        folder = folder.parent
    return min(limits) if limits else None
