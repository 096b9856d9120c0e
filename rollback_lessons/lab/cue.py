"""The cue over a panel's run: its parts, and what of them fits the cue's two lines (the
side column beside the picture clamps it; its title holds the whole)."""

from __future__ import annotations

from dataclasses import dataclass

CUE_LINE = 46  # characters a line of the cue holds at least (13 px bold in the side
# column beside the 560 px picture, at 1366x768: 47-50 seen in Chromium, newuser20)


NO_FAULTS, NONE_STRUCK = "no faults", "none struck"  # (``Said.struck`` when none struck)
NONE = (NO_FAULTS, NONE_STRUCK)


def cue_fits(text: str, line: int = CUE_LINE) -> bool:
    """Whether ``text`` wraps (at spaces, as the browser does) into the cue's two lines."""
    lines, width = 1, 0
    for word in text.split(" "):
        need = len(word) + (1 if width else 0)
        if width and width + need > line:
            lines, width = lines + 1, len(word)
        else:
            width += need
    return lines <= 2 and width <= line


@dataclass(frozen=True)
class Said:
    """What a run's cue says, in parts (``run_said``): the cue shows them whole or not at
    all, so its two-line clamp never cuts a fault name (newuser20: "never struck:
    write_file undo fails…" of "undo fails once" read as another fault)."""

    ended: str  # how the run ended: "rolled_back", "cancelled, then rollback_incomplete"
    struck: str  # the faults that struck: "reserve fail", "no faults", "none struck"
    missed: tuple[str, ...] = ()  # the faults that never struck, each named
    options: tuple[str, ...] = ()  # the options that differ from the engine's own
    stop: str = ""  # "Stop after event 5"
    why: str = ""  # what the Stop let finish: "(running steps finish first)"

    def text(
        self, head: str, names: bool = True, options: bool = True, why: bool = True,
        struck: bool = True,
    ) -> str:  # fmt: skip
        """The cue's text: ``head``, the end, then the parts asked for, each whole."""
        count = self.struck.count(", ") + self.struck.count(" and ") + 1
        named = struck or self.struck in NONE  # (none is said as it is: newuser22 read
        parts = [self.struck if named else f"{count} fault{'s' * (count != 1)} struck"]  # "1")
        if self.missed:
            count = len(self.missed)
            missed = ", ".join(self.missed) if names else f"{count} fault{'s' * (count != 1)}"
            parts.append(f"never struck: {missed}")
        parts += self.options if options else ()
        if self.stop:
            parts.append(f"{self.stop} {self.why}" if why and self.why else self.stop)
        return f"{head} → {self.ended}: {'; '.join(parts)}"

    def cue(self, head: str) -> tuple[str, str]:
        """(what the cue shows, its whole text for the title): the whole text if it fits
        two lines, else without the options (the dropdowns show them), then with the
        never-struck faults counted (named in the title), then without why the Stop let a
        step finish, then the struck ones counted too: never a name cut in two."""
        whole = self.text(head)
        tries = (
            (True, False, True), (False, False, True), (False, False, False),
            (False, False, False, False),
        )  # fmt: skip
        shown = next(
            (t for t in (self.text(head, *k) for k in tries) if cue_fits(t)),
            self.text(head, False, False, False, False),
        )
        return (whole if cue_fits(whole) else shown), whole
