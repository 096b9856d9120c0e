"""``rollback-lessons`` / ``python -m rollback_lessons``: the lesson in a terminal."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .demo import run_demo, xyz_saga
from .events import Event
from .outcome import Outcome

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
