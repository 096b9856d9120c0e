"""Numbers as an engine carries them: the plain value a number's subclass holds, so that
``saga.run``, ``recover`` and every engine read one number (attack105 F5, attack106 F8)."""

from __future__ import annotations

import operator
import sys
from typing import Any


def plain_number(value: Any) -> Any:
    """The plain number ``value`` holds: a float's or an int's subclass read as the value it
    holds (its own arithmetic and conversions set aside), another number (numpy's int64, a
    Decimal) by its own conversion, as an engine carries it (attack105 F5, attack106 F8,
    F10); a plain number, a bool or None as it is."""
    if value is None or type(value) in (int, float, bool):
        return value
    try:  # (one whose conversion raises is left as it is: refused by its check)
        numpy = sys.modules.get("numpy")  # (numpy's bool is a bool, refused as one: F8)
        if numpy is not None and isinstance(value, numpy.bool_):
            return bool(value)
        if isinstance(value, float):
            return float.__float__(value)
        if isinstance(value, int):
            return int.__index__(value)
        if hasattr(type(value), "__index__"):
            return operator.index(value)
        return float(value) if hasattr(type(value), "__float__") else value
    except Exception:
        return value
