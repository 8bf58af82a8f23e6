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
"""Compiled calls that release Python's GIL, so that a reader thread runs while they compute.

A fitting loop that runs many steps per compiled call (:mod:`pymc.variational.blocks`) spends
most of its time inside one call. PyTensor's Numba backend compiles a function that holds the
GIL for the whole call, so a thread reading the next block of batches (decoding a file,
shuffling, cutting batches) cannot run its Python between two of its library calls: reading
and computing take turns instead of running side by side. :func:`release_gil` gives a mode
whose Numba-compiled functions release the GIL while their compiled code runs (Numba's
``nogil=True``), as pyarrow's and numpy's own loops do.

Releasing the GIL changes nothing a function computes: the same graph, rewrites and machine
code run, only the wrapper that Numba puts around them to be called from Python differs. A
function that releases the GIL must not share its arrays with a thread that writes them while
it runs; the fitting loops hand it arrays that no reader writes again (every block is a new
array). The other backends are left as they are: JAX releases the GIL while it computes
already, and PyTensor's C backend calls back into Python between its operations.
"""

import types

from typing import cast

from pytensor.compile.mode import Mode, get_mode
from pytensor.link.numba.linker import NumbaLinker

__all__ = ["NumbaLinkerReleasingGIL", "release_gil"]

_CACHE_SUFFIX = "-nogil"
"""Appended to the Numba cache key of a function compiled to release the GIL.

Numba's on-disk cache tells compiled versions of a function apart by signature, machine and
bytecode, not by ``nogil``: a function compiled to release the GIL would find, and use, the one
compiled to hold it (and the other way round) unless its key differs.
"""


class NumbaLinkerReleasingGIL(NumbaLinker):
    """PyTensor's Numba linker, compiling functions that release the GIL while they run.

    The function PyTensor compiles for a graph is a Python-callable Numba function around the
    graph's compiled code; this linker compiles it with ``nogil=True``. Arguments are unpacked
    and results packed with the GIL held; the GIL is released in between. Operations that fall
    back to Python (Numba's object mode) take the GIL back for their call. Exceptions raised by
    the compiled code reach the caller as usual.

    Numba's cache keeps these functions apart from the same graphs compiled to hold the GIL:
    their cache key has a suffix of its own. The compiled operations inside are shared, since
    only the outermost function holds or releases the GIL.
    """

    def jit_compile(self, fn_and_cache):
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
        from pytensor.link.numba.dispatch.basic import numba_njit

        fn, cache_key = fn_and_cache
        py_func = fn.py_func
        key = CACHED_SRC_FUNCTIONS.get(py_func)
        if cache_key is None or key is None:
            # PyTensor would not cache this function either (a graph it cannot key).
            return numba_njit(py_func, final_function=True, nogil=True)
        # The same code under its own cache key: PyTensor's cache locator finds a function's
        # key by the function object, so a twin of it can carry a different key.
        twin = types.FunctionType(
            py_func.__code__,
            py_func.__globals__,
            py_func.__name__,
            py_func.__defaults__,
            py_func.__closure__,
        )
        twin.__source__ = getattr(py_func, "__source__", None)  # type: ignore[attr-defined]
        CACHED_SRC_FUNCTIONS[twin] = f"{key}{_CACHE_SUFFIX}"
        return numba_njit(twin, final_function=True, cache=True, nogil=True)


def release_gil(mode: Mode | str | None) -> Mode:
    """The same mode, compiling functions that release the GIL while they run, if it can.

    A mode with PyTensor's Numba linker (PyTensor's default) is given a
    :class:`NumbaLinkerReleasingGIL` and keeps its rewrites; the results of the functions it
    compiles are the same, bit for bit. Any other mode is returned as it is: JAX releases the
    GIL during its calls already; the C backend and the Python one cannot (their operations
    are called from Python), nor can a custom Numba linker, whose compilation this does not
    know.

    Parameters
    ----------
    mode : Mode, str or None
        A compilation mode, as ``pytensor.function`` takes it (None: PyTensor's default).

    Returns
    -------
    Mode
        A new mode, or ``mode`` itself when it cannot release the GIL or already does.

    Examples
    --------
    >>> import pytensor, pytensor.tensor as pt
    >>> x = pt.vector("x")
    >>> f = pytensor.function([x], (x**2).sum(), mode=release_gil("NUMBA"))
    >>> float(f([1.0, 2.0]))
    5.0
    """
    # get_mode always returns a Mode (it looks names up); PyTensor's hints allow a str too.
    resolved = cast(Mode, get_mode(mode))
    if type(resolved.linker) is not NumbaLinker:
        return resolved
    # The linker's two settings (PyTensor keeps the scheduler private), as Linker.clone copies
    # them.
    linker = NumbaLinkerReleasingGIL(
        allow_gc=resolved.linker.allow_gc, schedule=getattr(resolved.linker, "_scheduler", None)
    )
    return Mode(linker=linker, optimizer=resolved.provided_optimizer, db=resolved.optdb)
