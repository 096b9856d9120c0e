"""``rollback-lessons`` / ``python -m rollback_lessons``: the lesson in a terminal."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .events import Event
from .outcome import Outcome
from .worlds.demo import run_demo, xyz_saga

_ARROWS = {
    "step_start": "->",
    "step_done": " ✓",
    "step_failed": " ✗",
    "step_retry": " ↻",
    "undo_registered": " +",
    "pipeline_failed": "!!",
    "rollback_start": "<-",
    "undo": "<-",
    "undo_done": " ✓",
    "undo_failed": " ✗",
    "rollback_done": "==",
    "committed": "==",
    "halted": "!!",
}


def _line(event: Event) -> str:
    mark = _ARROWS.get(event.kind, "  ")
    indent = "      " if event.kind in ("undo", "undo_done", "undo_failed") else "  "
    details = " ".join(f"{k}={v}" for k, v in event.details.items())
    return f"{indent}{mark} {event.kind:<15} {event.step or '':<6} {details}".rstrip()


def print_outcome(outcome: Outcome, title: str, out=sys.stdout) -> None:
    print(f"== {title}", file=out)
    print(f"   state before: {dict(outcome.state_before or {})}", file=out)
    for event in outcome.events:
        print(_line(event), file=out)
    print(file=out)
    print("\n".join("   " + line for line in outcome.summary_lines()), file=out)
    print(file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
            "and the state before and after. With no flags: a commit, then a rollback."
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
    journal = sub.add_parser("journal", help="look into a journal file")
    journal_sub = journal.add_subparsers(dest="journal_command", required=True)
    show = journal_sub.add_parser("show", help="the sagas in a journal and their status")
    show.add_argument("file", help="the journal (an SQLite file)")
    recover = sub.add_parser(
        "recover",
        help="finish the rollback of every saga in a journal that did not end",
        description=(
            "Finish the rollback of every saga that did not end (its process crashed). "
            "Compensations are looked up by name in the registry of MODULE only."
        ),
    )
    recover.add_argument("file", help="the journal (an SQLite file)")
    recover.add_argument(
        "--registry",
        required=True,
        metavar="MODULE",
        help="the module that registers the compensations (its `registry`, or the default one)",
    )
    recover.add_argument(
        "--force", action="store_true", help="also sagas whose process still seems alive"
    )
    return parser


def _journal_command(args: argparse.Namespace) -> int:
    import importlib

    from .durable.journal import Journal, JournalError
    from .durable.recovery import recover
    from .durable.registry import default_registry

    if not os.path.exists(args.file):
        print(f"rollback-lessons: no journal at {args.file}", file=sys.stderr)
        return 2
    try:
        journal = Journal(args.file)
    except JournalError as exc:
        print(f"rollback-lessons: {exc}", file=sys.stderr)
        return 2
    with journal:
        if args.command == "journal":
            print(journal.table())
            return 0
        module = importlib.import_module(args.registry)
        registry = getattr(module, "registry", default_registry)
        reports = recover(journal, registry, force=args.force)
        for report in reports:
            print(report)
        print(f"recovered {len(reports)} saga(s)")
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in ("journal", "recover"):
        return _journal_command(args)
    if args.fail_at is None and not args.undo_fails:
        print_outcome(run_demo(), "a run that commits")
        print_outcome(run_demo("step3"), "the same run, step3 fails")
        return 0
    options = dict(
        fault=args.fault,
        undo_fails=tuple(args.undo_fails),
        policy=args.policy,
        register=args.register,
    )
    outcome = run_demo(args.fail_at, **options)
    title = f"{args.fail_at} fails ({args.fault})" if args.fail_at else "no step fails"
    print_outcome(outcome, f"{title}, policy={args.policy}, register={args.register}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
