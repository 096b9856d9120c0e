"""Counted nouns as the lessons and their feedback say them: "1 call", "3 calls", never
"call(s)" (learn83 F7): one rule, used wherever a count is printed."""

from __future__ import annotations


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun``, inflected: ``counted(1, "call")`` is "1 call",
    ``counted(3, "call")`` "3 calls" (``plural`` when it is not ``noun + "s"``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
