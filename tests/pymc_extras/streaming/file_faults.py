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
"""Faults of the file system for reader tests: files the process may not read."""

import contextlib
import ctypes
import os

from collections.abc import Iterator

import pytest

_CAPABILITY_VERSION_3 = 0x20080522
_DAC_OVERRIDES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


@contextlib.contextmanager
def _without_root_overrides() -> Iterator[None]:
    """Drop root's power to read any file, for this thread (and threads it starts)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        header, data = _Header(_CAPABILITY_VERSION_3, 0), (_Data * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capget")
    except (OSError, AttributeError):
        pytest.skip("running as root, and the root capabilities cannot be dropped here")
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_OVERRIDES
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("running as root, and the root capabilities cannot be dropped here")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


@contextlib.contextmanager
def unreadable(*paths) -> Iterator[None]:
    """Make ``paths`` unreadable for this process while the block runs (root included)."""
    modes = [os.stat(path).st_mode for path in paths]
    for path in paths:
        os.chmod(path, 0)
    try:
        if os.geteuid() == 0:
            with _without_root_overrides():
                yield
        else:
            yield
    finally:
        for path, mode in zip(paths, modes):
            os.chmod(path, mode)
