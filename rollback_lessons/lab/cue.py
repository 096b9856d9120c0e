"""The cue over a panel's run: its parts, and what of them fits the cue's two lines (the
side column beside the picture clamps it; its title holds the whole)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..events import Event, EventKind

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
    note: tuple[str, ...] = ()  # why the Stop did not take, (whole, short): ("too late:
    # reserve was running", "too late"), said after ``ended`` in brackets

    def text(
        self, head: str, names: bool = True, options: bool = True, why: bool = True,
        struck: bool | None = True, note: bool = True, missed: bool = True,
    ) -> str:  # fmt: skip
        """The cue's text: ``head``, the end, then the parts asked for, each whole (the
        struck faults named, counted, or, ``struck=None``, left to the title). The faults
        that never struck are said only after those that did, never without them: "never
        struck: 1 fault" alone read as if no fault struck (newuser23 #2)."""
        ended = f"{self.ended} ({self.note[0 if note else 1]})" if self.note else self.ended
        count = self.struck.count(", ") + self.struck.count(" and ") + 1
        named = struck or self.struck in NONE  # (none is said as it is: newuser22 read
        parts = [self.struck if named else f"{count} fault{'s' * (count != 1)} struck"]  # "1")
        parts = [] if struck is None else parts  # (left to the title)
        if self.missed and missed and struck is not None:
            count = sum(m.count(" and ") + 1 for m in self.missed)  # (a step's two: two)
            never = ", ".join(self.missed) if names else f"{count} fault{'s' * (count != 1)}"
            parts.append(f"never struck: {never}")
        parts += self.options if options else ()
        if self.stop:
            parts.append(f"{self.stop} {self.why}" if why and self.why else self.stop)
        return f"{head} → {ended}{': ' * bool(parts)}{'; '.join(parts)}"

    def cue(self, head: str) -> tuple[str, str]:
        """(what the cue shows, its whole text for the title): the whole text if it fits
        two lines, else without the options (the dropdowns show them), then with the
        never-struck faults counted (named in the title), then without why the Stop let a
        step finish, then the struck ones counted too, then why the Stop did not take said
        short ("too late"), then the never-struck ones left to the title, last the struck
        ones too (a long end, "cancelled, then rollback_incomplete", and a Stop leave room
        for no more): never a name cut, and what struck kept longest."""
        whole = shown = self.text(head)
        asked: dict[str, bool | None] = {}
        for cut in _CUTS:  # (each one more than the one before, until it fits; else all)
            if cue_fits(shown):
                break
            asked |= cut
            shown = self.text(head, **asked)  # type: ignore[arg-type]
        return shown, whole


_CUTS: tuple[dict[str, bool | None], ...] = (
    {"options": False}, {"names": False}, {"why": False}, {"struck": False}, {"note": False},
    {"missed": False}, {"struck": None},
)  # ``Said.cue``'s cuts, in the order it makes them  # fmt: skip


def failed_steps(events: Sequence[Event]) -> list[tuple[str, bool]]:
    """The steps that failed in a run, each once, in order, with whether its effect had
    happened (the engine's ``after_effect``): what struck besides a Stop that took, named
    in the cue and the result (newuser22 #2)."""
    failed: dict[str, bool] = {}
    for e in events:
        if e.kind == EventKind.STEP_FAILED and e.step:
            failed[e.step] = failed.get(e.step, False) or bool(e.details.get("after_effect"))
    return list(failed.items())


def undo_failed(events: Sequence[Event]) -> bool:
    """Whether an undo failed: the one case a Stop that took is "cancelled, then X" (the
    rollback the cancel began did not finish); a step that failed after its effect beside
    the Stop is "cancelled and X" (newuser22 #2: no undo failed)."""
    return any(e.kind == EventKind.UNDO_FAILED for e in events)


def late_why(events: Sequence[Event], stop_after: int) -> tuple[str, str]:
    """Why a Stop after event ``stop_after`` came too late, from the events, in the
    learner's words, as (the cue's short note, what the Stop's clause adds): the run had
    failed or ended by then, or a step running then failed as it finished (a Stop is heard
    only as a step returns: newuser22 #3, "too late: the run failed or ended" of a Stop at
    "step_start reserve", placed before the failure)."""
    seen, later = events[:stop_after], events[stop_after:]
    if any(e.kind == EventKind.COMMITTED for e in seen):
        return "too late: the run had ended", ""
    if any(e.kind in (EventKind.STEP_FAILED, EventKind.PIPELINE_FAILED) for e in seen):
        return "too late: the run had already failed", ""
    ended = {e.step for e in seen if e.kind in (EventKind.STEP_DONE, EventKind.STEP_FAILED)}
    running = [e.step for e in seen if e.kind == EventKind.STEP_START and e.step not in ended]
    together = {e.step for e in later if e.kind == EventKind.STEP_START}  # (a group's ready
    failed = [s for s, _ in failed_steps(later) if s in running or s in together]  # steps)
    if not failed or not running:
        return "too late: the run failed or ended before the Stop was heard", ""
    one = len(failed) == 1
    how = (f"{'was' if one else 'were'} running" if set(failed) <= set(running)
           else f"started with {', '.join(map(str, running))}")  # fmt: skip
    return (
        f"too late: {', '.join(failed)} {how}",
        f"({'its call' if one else 'their calls'} returned failed, and a Stop is heard only "
        "as a step returns)",  # (not "failed as it finished": of a fault before its effect)
    )
