"""``rollback-lessons`` / ``python -m rollback_lessons``: the lesson in a terminal."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from . import _late_threads as late_threads
from ._ending import HANDLERS_LEAST, at_end, ended, interrupt_in, stop_pools, threads_left
from ._held import telling
from ._output import STDOUT, OutputError, _quiet_stdout, _warn
from ._output import _say as _say  # (durable.command says through cli: a test stands in)
from ._starting import Terminated, raised_by_code, reclaimed
from .events import UNDO_KINDS, Event, EventKind, describe, one_line
from .outcome import Outcome

if TYPE_CHECKING:
    from .durable.registry import Registry
from .worlds.demo import never_struck, run_demo, xyz_saga

_ARROWS: dict[str, str] = {
    EventKind.STEP_START: "->",
    EventKind.STEP_DONE: " ✓",
    EventKind.STEP_FAILED: " ✗",
    EventKind.STEP_RETRY: " ↻",
    EventKind.UNDO_REGISTERED: " +",
    EventKind.PIPELINE_FAILED: "!!",
    EventKind.ROLLBACK_START: "<-",
    EventKind.UNDO: "<-",
    EventKind.UNDO_DONE: " ✓",
    EventKind.UNDO_FAILED: " ✗",
    EventKind.ROLLBACK_DONE: "==",
    EventKind.COMMITTED: "==",
    EventKind.HALTED: "!!",
}


def _line(event: Event) -> str:
    mark = _ARROWS.get(event.kind, "  ")
    indent = "      " if event.kind in UNDO_KINDS else "  "
    details = " ".join(f"{k}={v}" for k, v in event.details.items())
    return f"{indent}{mark} {event.kind:<15} {event.step or '':<6} {details}".rstrip()


def _module_name(text: str) -> str:
    """--registry's value: a module's name (dotted Python names), checked before anything."""
    if not all(part.isidentifier() for part in text.split(".")):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a module name: dotted Python names, such as myapp.compensations"
        )
    return text


def _journal_path(text: str) -> str:
    """Refused in one line, exit 2, as Journal refuses it (not a traceback: attack291 F3)."""
    from .durable.files import names_a_folder, no_file  # (a NUL never comes in an argument)

    if not text or names_a_folder(text):
        raise argparse.ArgumentTypeError(no_file(text))
    return text


def _seconds(text: str) -> float:
    """--wait's value: a finite number of seconds, 0 or more, no longer than SQLite waits."""
    from .durable.files import MAX_WAIT

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    if value > MAX_WAIT:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than SQLite can wait for a lock "
                                         f"({MAX_WAIT} seconds at most)")  # fmt: skip
    return value


def print_outcome(outcome: Outcome, title: str, out: Any = None) -> None:
    out = out if out is not None else sys.stdout
    print(f"== {title}", file=out)
    print(f"   state before: {dict(outcome.state_before or {})}", file=out)
    for event in outcome.events:
        print(_line(event), file=out)
    print("", *("   " + line for line in outcome.summary_lines()), "", sep="\n", file=out)


class UsageExit(SystemExit):
    """argparse's own exit (``--help``, a usage error): the only ``SystemExit`` ``main``
    takes for the end of a command; any other is an interrupt (``interrupted_by``)."""


NOT_SENT = "a KeyboardInterrupt the code it ran raised; no Ctrl-C was sent"


def interrupted_by(exc: BaseException) -> tuple[str, int]:
    """What interrupted a command, and the exit status it ends with: a Ctrl-C 130; a
    SIGTERM 143 (``Terminated``: the command's own handler); a ``SystemExit`` that is not
    argparse's (a registry's SIGTERM handler calling ``sys.exit(0)``, a library's own) its
    own code when that is a failure status (143 says SIGTERM to a service manager), 2
    otherwise: never 0, the command did not finish. A KeyboardInterrupt that no Ctrl-C sent
    (an undo's or a registry's own ``raise``) is the code's failure, said so, exit 2."""
    if isinstance(exc := interrupt_in(exc), Terminated):  # (one under threading's error)
        return "SIGTERM", 143
    if not isinstance(exc, SystemExit):  # (a KeyboardInterrupt no Ctrl-C sent: the code's
        return (NOT_SENT, 2) if raised_by_code() else ("Ctrl-C", 130)  # failure)
    code = exc.code
    status = code if type(code) is int and 0 < code < 256 else 2
    return f"sys.exit({code!r}) was called (a signal handler's?)", status


class _Parser(argparse.ArgumentParser):
    """argparse, its ``--help`` written as the command's own output: a write that fails is
    one line and exit 2, as any (argparse itself would drop the error and exit 0). Its exits
    are ``UsageExit``: told from a ``sys.exit`` anywhere else. A flag's prefix is no flag
    (``--fo`` was taken for ``--force``, attack127 F2), in every subcommand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        """A usage error: one line (attack285 F4; 286 F12), naming the way to the usage."""
        how = f"`{self.prog} --help` shows usage"
        self.exit(2, f"{self.prog}: error: {one_line(message)} ({how})\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            self._print_message(message, sys.stderr)
        raise UsageExit(status)

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and file is sys.stdout:
            STDOUT.write(message)
        else:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rollback-lessons",
        description="Teach the rollback pattern: run a pipeline, break it, watch it undo.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    steps = list(xyz_saga().names)
    demo = sub.add_parser(
        "demo",
        help="run the x/y/z pipeline of lesson 01",
        description=(
            "Run the lesson's pipeline (step1 sets x, step2 sets y, step3 sets z) and "
            "print each step, the failure, each undo in reverse order, the dead letters "
            "and the state before and after. With no --fail-at or --undo-fails: a commit, "
            "then step3 failing (each under the other flags given)."
        ),
    )
    demo.add_argument("--fail-at", choices=steps, help="the step that fails")
    demo.add_argument(
        "--fault",
        choices=["fail", "fail_after_effect"],
        default="fail",
        help="fail before the step's effect (default) or after it, like a timeout",
    )
    demo.add_argument(
        "--undo-fails", choices=steps, action="append", default=[], help="an undo that fails"
    )
    demo.add_argument(
        "--policy",
        choices=["continue", "retry", "halt"],
        default="continue",
        help="what to do when an undo fails (default: continue, recording a dead letter)",
    )
    demo.add_argument(
        "--register",
        choices=["before", "after"],
        default="after",
        help="log each undo before its action runs, or after it succeeds (default)",
    )
    lab = sub.add_parser(
        "lab",
        help="copy the lessons into a folder and open them in JupyterLab",
        description=(
            "Copy the lessons (they ship inside the package) into DIR on first use, and "
            "open JupyterLab there on 127.0.0.1. A lesson you changed is never overwritten: "
            "a newer one goes beside it, and this command says so."
        ),
    )
    lab.add_argument(
        "dir", nargs="?", default="rollback-lessons",
        help="the folder for your copy of the lessons (default: ./rollback-lessons)",
    )  # fmt: skip
    lab.add_argument(
        "--port", type=int, default=8888, help="JupyterLab's port on 127.0.0.1 (default 8888)"
    )
    journal = sub.add_parser("journal", help="look into a journal file, or settle a saga")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    show = journal_sub.add_parser("show", help="the sagas in a journal and their status")
    show.add_argument("file", type=_journal_path, help="the journal (an SQLite file)")
    settle = journal_sub.add_parser(
        "settle",
        help="record that a person dealt with a saga left for one; recover stops naming it",
        description=(
            "Record in the journal that a person dealt with a saga ended for one (halted, or "
            "with dead letters or a step leaked): who, when and NOTE. recover no longer names "
            "it, and journal show says so. Any other saga is refused, nothing written."
        ),
    )
    settle.add_argument("file", type=_journal_path, help="the journal (an SQLite file)")
    settle.add_argument("saga_id", metavar="SAGA_ID", help="the saga's id (see journal show)")
    settle.add_argument("--note", required=True, help="what was done by hand (one line)")
    recover = sub.add_parser(
        "recover",
        help="finish the rollback of every saga in a journal that did not end",
        description=(
            "Finish the rollback of every saga that did not end (its process crashed). "
            "Compensations are looked up by name in the registry of MODULE only."
        ),
    )
    recover.add_argument("file", type=_journal_path, help="the journal (an SQLite file)")
    recover.add_argument(
        "--registry",
        required=True,
        type=_module_name,
        metavar="MODULE",
        help="the importable module whose `registry` (a rollback_lessons Registry) has the "
        "compensations; sagas with names it does not know are left unfinished",
    )
    recover.add_argument(
        "--force",
        action="store_true",
        help="also take over sagas whose process cannot be checked from here (another host, "
        "container or boot); "
        "a saga whose process still runs here is never taken over",
    )
    for command in (show, settle, recover):
        command.add_argument(
            "--wait",
            type=_seconds,
            default=30.0,
            metavar="SECONDS",
            help="how long to wait for a lock another process holds (default 30)",
        )
    return parser


class CommandError(Exception):
    """A mistake the operator can fix: printed as one line, exit status 2."""


def _said(exc: BaseException) -> str:
    """An error as an operator reads it: its type and its message (never a repr)."""
    try:
        text = str(exc)
    except Exception:
        return describe(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_registry(name: str) -> Registry:
    """The ``registry`` of module ``name``; never a fallback to another registry."""
    import importlib

    from .durable.registry import Registry

    try:
        _module_name(name)
    except argparse.ArgumentTypeError as exc:
        raise CommandError(f"--registry {exc}") from None
    if "" not in sys.path and os.getcwd() not in sys.path:  # (the console script's path[0]
        sys.path.insert(0, os.getcwd())  # is its bin/: as `python -m`, this folder: F13)
    try:
        module = reclaimed(importlib.import_module(name))  # (its Ctrl-C handler: ours)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise CommandError(
                f"no module named {name!r} (is it importable from here? check PYTHONPATH)"
            ) from None
        raise CommandError(f"importing {name!r} failed: {_said(exc)}") from None
    except SystemExit as exc:  # an import that exits is no registry, whatever its code
        raise CommandError(
            f"importing {name!r} failed: it called sys.exit({exc.code!r}); nothing was recovered"
        ) from None
    except KeyboardInterrupt:
        raise  # (a Ctrl-C stays one)
    except BaseException as exc:  # an Exception, or another BaseException: no registry
        raise CommandError(f"importing {name!r} failed: {_said(exc)}") from None
    try:
        registry = getattr(module, "registry", None)
        if isinstance(registry, Registry):
            return registry
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a module ``__getattr__`` or a metaclass that raises
        raise CommandError(f"reading {name}.registry failed: {_said(exc)}") from None
    what = "has no `registry`" if registry is None else "has a `registry` that is not one"
    raise CommandError(
        f"module {name!r} {what}: define `registry = Registry()` there and register the "
        "compensations on it"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command; a Ctrl-C is one line (exit 130), so is a ``sys.exit`` not argparse's
    (``interrupted_by``) and a stdout that cannot be written (exit 2); a reader that stops
    early (``| head``) ends it quietly, as Python's documentation on SIGPIPE advises."""
    from . import _starting

    try:
        _starting.started()  # a Ctrl-C is KeyboardInterrupt again, caught here
        for said in ("DONE", "TOLD", "ENTERED", "SETTLED"):  # (an earlier main's, in process)
            getattr(sys.modules.get(_COMMAND), said, []).clear()
        if sys.stdout is None:  # started with it closed (>&-): nothing is done
            _warn(
                "standard output is closed; nothing was done (send it somewhere: "
                "> file, or > /dev/null)"
            )
            return 2
        STDOUT.bind(sys.stdout)  # (the command's own: not one a registry puts in its place)
        try:
            code = _main(argv)
        except UsageExit as exc:  # argparse: --help (its text flushed below) or bad usage
            if exc.code:
                raise
            code = 0
        except RuntimeError as exc:  # (a Ctrl-C Python 3.11 wrapped: said as one)
            raise _starting.unwrapped(exc) from None
        STDOUT.flush()  # (a closed pipe or a full disk is found here, not at exit)
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except OutputError as exc:
        _quiet_stdout()
        _warn(f"cannot write to standard output: {exc}")
        return 2
    except UsageExit:
        raise  # (argparse's usage error: its lines written, its status)
    except (KeyboardInterrupt, SystemExit) as exc:  # (any sys.exit but argparse's; a
        ending = [interrupted_by(exc)[1], b""]  # second signal as its line is written,
        with telling(ending):  # held: attack66 F3; ends it as that blocks: attack71 F2)
            words = list(sys.argv[1:] if argv is None else argv)  # (a settle's before it
            return _interrupted(exc, ending, words[:2] == ["journal", "settle"])  # began)
    finally:
        STDOUT.target = None  # (a store, no call: no instant for a Ctrl-C here, attack121 F1)


_COMMAND = "rollback_lessons.durable.command"


def _interrupted(exc: BaseException, ending: list[Any] | None = None, settle: bool = False) -> int:
    """A Ctrl-C or a ``sys.exit``: one line; cut short, never a success; heard once the
    command had finished (its work done and said: ``durable.command.DONE``), said so, with
    its own status (attack60 F2: "the command did not finish", of a settle written)."""
    what, status = interrupted_by(exc)
    told = getattr(sys.modules.get(_COMMAND), "TOLD", None)
    if told:  # (its own interrupt's line said: the first one's, alone: attack68 F3)
        return int(told[-1])
    done = getattr(sys.modules.get(_COMMAND), "DONE", None)
    if done:  # (its own failure status kept, a settle's 0; else the interrupt's: 299 F3)
        status = int(done[-1][0]) or _status_at_end(exc)
        line = f"interrupted ({what}) once the command had finished: {done[-1][1]}"
    else:
        line = (f"interrupted ({what})" if isinstance(exc, KeyboardInterrupt) else
                f"interrupted: {what}; the command did not finish")  # fmt: skip
        if settle and not getattr(sys.modules.get(_COMMAND), "ENTERED", None):  # (as its
            line += " before the settle was written: nothing was settled"  # arguments were
            # read, or the command loaded: attack229 F3)
    if ending is not None:  # (what a further signal says, if the line blocks: attack71 F2)
        ending[:] = [status, f"rollback-lessons: {one_line(line)}\n".encode(errors="replace")]
    _warn(line)
    return status


THREAD_WAIT = 5.0  # how long the program waits, its command done, for threads left running


def run() -> NoReturn:
    """The program (``rollback-lessons``, ``python -m rollback_lessons``): ``main``, then
    the exit. Python would wait forever at exit for a thread a registry module left running
    (not a daemon): it is waited for ``THREAD_WAIT`` seconds, then the process ends anyway
    (output flushed, exit handlers run), said in one line, the command's own exit status."""
    me, waited, deadline = threading.current_thread(), f"still ran {THREAD_WAIT:g} s", 0.0
    code: int | None = None  # (until main returns: a signal as it does, attack299 F1)
    try:  # (all of it: a handler's sys.exit(0) between two parts ended it 0, no line: F5)
        code = main()
        deadline = time.monotonic() + late_threads.end_left(wait=THREAD_WAIT)  # (all waits)
        stop_pools(THREAD_WAIT)  # (a registry's pools: told to stop, as Python's exit does)
        for thread in threading.enumerate():
            if thread is not me and not thread.daemon:
                thread.join(max(0.0, deadline - time.monotonic()))
        threads_left(f"{waited} after the command ended", _warn)
        if cut := late_threads.waited(deadline):  # (a call past its timeout: attack283 F2)
            _warn(late_threads.cut_line(cut, f"{THREAD_WAIT:g} s after the command ended"))
    except (KeyboardInterrupt, SystemExit) as exc:  # (a Ctrl-C, a handler's exit: no wait)
        said, code, _ = code, code or _status_at_end(exc), late_threads.end_left(cut=True)
        with contextlib.suppress(BaseException):
            if said is not None:
                at_end(exc, said, _warn)
            elif type(exc) is not UsageExit:  # (cut as main returned: its line, as main's;
                code = _interrupted(exc)  # a usage error's said already, its status 2)
            threads_left("were not waited for (interrupted)", _warn)
            if cut := late_threads.waited(0.0):
                _warn(late_threads.cut_line(cut, "as the command ended (interrupted)"))
    try:  # (its exit handlers run here, under this rule: ``_ending``)
        within = max(HANDLERS_LEAST, deadline - time.monotonic())
        os._exit(ended(code or 0, _warn, _status_at_end, within))
    except BaseException as exc:  # (a Ctrl-C, a handler's exit between: the work is done,
        with contextlib.suppress(BaseException):  # the status says so: attack50 F3)
            at_end(exc, code, _warn)
        os._exit(code or _status_at_end(exc))


def _status_at_end(exc: BaseException) -> int:
    """A command that ended 0, cut at its end: ``interrupted_by``'s status; a settle's 0."""
    return 0 if getattr(sys.modules.get(_COMMAND), "SETTLED", ()) else interrupted_by(exc)[1]


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("journal", "recover"):
        from .durable.command import journal_command

        return journal_command(args)
    if args.command == "lab":
        from .lab.launch import lab_cli

        return lab_cli(args)
    options = dict(fault=args.fault, undo_fails=tuple(args.undo_fails), policy=args.policy,
                   register=args.register)  # fmt: skip
    if args.fail_at is None and not args.undo_fails:  # (the other flags: both runs, said so)
        said = f"policy={args.policy}, register={args.register}"
        plain = (args.fault, args.policy, args.register) == ("fail", "continue", "after")
        print_outcome(run_demo(**options), "a run that commits" + f", {said}" * (not plain), STDOUT)
        then = "the same run, step3 fails" + f" ({args.fault}), {said}" * (not plain)
        print_outcome(run_demo("step3", **options), then, STDOUT)
        return 0
    outcome = run_demo(args.fail_at, **options)
    title = f"{args.fail_at} fails ({args.fault})" if args.fail_at else "no step fails"
    title += never_struck(outcome, args.undo_fails)  # (said, as the panel says it)
    print_outcome(outcome, f"{title}, policy={args.policy}, register={args.register}", STDOUT)
    return 0


if __name__ == "__main__":  # pragma: no cover
    run()
