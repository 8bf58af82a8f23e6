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
"""Casts that change no value: data converted to the dtype a stream holds, or refused."""

import numpy as np

from pymc.exceptions import SourceDataError

__all__ = ["cast_exactly", "changed_by_cast", "check_cast"]

_NUMERIC_KINDS = "biuf"


def _exact_int_bits(dtype: np.dtype) -> int:
    """Integers up to ``2**bits`` in magnitude are exact in the floating ``dtype``."""
    return np.finfo(dtype).nmant + 1


def changed_by_cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray | None:
    """Flat positions of the values that ``values.astype(dtype)`` would change, or None.

    Integers must survive exactly: in range for an integer dtype, exactly representable in a
    floating one (``int64`` above ``2**53`` is not in ``float64``, though numpy calls that cast
    "safe"); floats cast to integers must be whole and in range. Floats cast to a narrower
    float may round, as any float computation does, but not overflow to infinity. Integers are
    checked by their least and greatest values (two vectorised passes, no copy) and one by one
    only when those are out of the safe range; nothing is checked where the cast cannot change
    a value.
    """
    source, target = values.dtype, np.dtype(dtype)
    if source == target or source.kind == "b" or not values.size:
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        if target.kind == "f" and source.kind == "f":
            changed = np.isfinite(values) & ~np.isfinite(values.astype(target))
        elif target.kind == "f":  # integers: exact up to 2**bits in magnitude
            bits = _exact_int_bits(target)
            if source.itemsize * 8 <= bits or (
                values.min() >= -(2**bits) and values.max() <= 2**bits
            ):
                return None
            cast = values.astype(target)
            # Rounding up to 2**63 (2**64) leaves the integer range: astype back is undefined.
            changed = (cast >= float(np.iinfo(source).max) + 1) | (cast.astype(source) != values)
        elif target.kind == "b":
            changed = (values != 0) & (values != 1)
        elif source.kind == "f":  # to an integer dtype: whole and in range
            info = np.iinfo(target)
            changed = (
                ~np.isfinite(values)
                | (values < float(info.min))
                | (values >= float(info.max) + 1)
                | (values.astype(target) != values)
            )
        else:  # integer to integer: in range (a wrapped value survives a round trip)
            info = np.iinfo(target)
            if values.min() >= info.min and values.max() <= info.max:
                return None
            changed = (values < info.min) | (values > info.max)
    changed = np.asarray(changed)
    return np.flatnonzero(changed.ravel()) if changed.any() else None


def check_cast(
    values: np.ndarray, dtype: np.dtype, where: str, advice: str, *, target: str | None = None
) -> None:
    """Refuse complex or non-numeric ``values``, or any that ``dtype`` would change.

    Parameters
    ----------
    values : numpy.ndarray
        The data as read.
    dtype : numpy.dtype
        The dtype the stream holds.
    where : str
        What ``values`` are, for the message (e.g. ``"chunk 3, output 0"``, ``"column 'x'"``).
    advice : str
        What the user can do, ending the message.
    target : str, optional
        What ``dtype`` is, for the message; by default "the dtype <dtype>".

    Raises
    ------
    SourceDataError
        If ``values`` are not real numbers, or the cast would change a value (the message
        names a value and what it would become); see :func:`changed_by_cast`.
    """
    dtype = np.dtype(dtype)
    target = f"the dtype {dtype}" if target is None else target
    if values.dtype.kind not in _NUMERIC_KINDS:
        shown = values.ravel()[0] if values.size else None
        shown = shown.item() if isinstance(shown, np.generic) else shown
        kind = "complex" if values.dtype.kind == "c" else "non-numeric"
        raise SourceDataError(
            f"{where} holds {kind} values of dtype {values.dtype} (e.g. {shown!r}) where "
            f"{target} was expected. Streaming needs real numbers. {advice}"
        )
    changed = changed_by_cast(values, dtype)
    if changed is not None:
        value = values.ravel()[changed[0]]
        with np.errstate(over="ignore", invalid="ignore"):
            becomes = np.asarray(value).astype(dtype)
        raise SourceDataError(
            f"{where}: {len(changed)} value(s) of dtype {values.dtype} do not fit {target} "
            f"(e.g. {value.item()!r} would become {becomes.item()!r}). {advice}"
        )


def cast_exactly(
    values: np.ndarray, dtype: np.dtype, where: str, advice: str, *, target: str | None = None
) -> np.ndarray:
    """``values`` as ``dtype``, after :func:`check_cast` (same parameters and errors)."""
    check_cast(values, dtype, where, advice, target=target)
    if values.dtype == dtype:
        return values
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(dtype)
