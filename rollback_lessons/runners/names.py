"""Step names as an engine that writes the saga down can carry them. A step's name is any
text ``rules.check_name`` allows; a state in Amazon States Language has at most 80
characters and must be unique in its machine, and moto's interpreter (like any JSONPath
tool) trips on quotes, backslashes and the like. So each step gets a *key*, kept in the
saga's plan (``StepPlan.key``): its name where that is plain and short (the lessons' names
all are: the state machines read as before), otherwise ``#<position> <its name in plain
letters>``, cut short. A plain name never has ``#``, so no key can take another's."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

KEY_LENGTH = 60
"""Characters of a key at most: ``Ask a person about <key>`` stays within ASL's 80."""
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]+(?: [A-Za-z0-9_.\-]+)*")
_NOT_PLAIN = re.compile(r"[^A-Za-z0-9_.\-]+")
EXECUTION_NAME_LENGTH = 80
"""Characters of a Step Functions execution's name at most (no whitespace either)."""


def plain(name: str) -> bool:
    """Letters, digits, ``_ . -`` and single spaces, at most KEY_LENGTH characters."""
    return len(name) <= KEY_LENGTH and _PLAIN.fullmatch(name) is not None


def _letters(name: str) -> str:
    """``name`` in ASCII letters: accents dropped, anything else a ``_``."""
    ascii_only = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return _NOT_PLAIN.sub("_", ascii_only).strip("_")


def keys(names: Sequence[str]) -> list[str]:
    """One key per step, in order: unique, plain, at most KEY_LENGTH characters."""
    found = []
    for position, name in enumerate(names, 1):
        if plain(name):
            found.append(name)
        else:
            found.append(f"#{position} {_letters(name)}"[:KEY_LENGTH].rstrip())
    return found


def execution_name(saga: str, suffix: str) -> str:
    """A Step Functions execution's name for a run of saga ``saga``: ASCII letters, digits,
    ``_ . -``, at most 80 characters, ending with ``suffix`` (what makes it unique)."""
    room = EXECUTION_NAME_LENGTH - len(suffix) - 1
    head = _NOT_PLAIN.sub("_", saga).strip("_")[:room]
    return f"{head or 'saga'}-{suffix}"
