"""What a ``sys.exit`` (a service's SIGTERM handler) says when it ends a run (attack58 F6,
F7, F9): it is named as what it is, never "the Ctrl-C"; its notes reach stderr every time a
run ends so, at the caller's line; a pivot saga's commit in doubt does not promise a
rollback ``recover`` will not do."""

from __future__ import annotations

import sqlite3
import warnings

import pytest
from test_interrupt_ends import DRIVERS, world_steps

from rollback_lessons import AsyncRollback, Rollback, Saga, Step
from rollback_lessons.durable.journal import Journal


def _exit_at_commit(driver: str, world: list[str], code: int) -> SystemExit:
    """``steps`` a, b on ``driver``, an observer of the ``committed`` event calling sys.exit."""

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "committed":
            raise SystemExit(code)

    steps = world_steps(world)
    with pytest.raises(SystemExit) as raised:
        if driver in ("rollback", "arollback"):
            import asyncio

            if driver == "rollback":
                with Rollback(on_event=on_event) as rb:
                    for name, act, undo in steps:
                        rb.do(name, act, undo)  # type: ignore[arg-type]
            else:

                async def block() -> None:
                    async with AsyncRollback(on_event=on_event) as arb:
                        for name, act, undo in steps:
                            await arb.do(name, act, undo)  # type: ignore[arg-type,misc]

                asyncio.run(block())
        else:
            saga = Saga([Step(n, a, u) for n, a, u in steps], name="s")  # type: ignore[arg-type]
            if driver == "list":
                saga.run({}, on_event=on_event)
            elif driver == "graph":
                saga.run({}, completion=list(saga.names), on_event=on_event)
            else:
                import asyncio

                asyncio.run(saga.arun({}, on_event=on_event))
    return raised.value


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_sys_exit_once_the_saga_committed_is_no_ctrl_c_and_says_so_on_stderr(driver):
    """attack58 F6: on every engine, a sys.exit at the ``committed`` event was noted "the
    Ctrl-C came once the saga had committed"; in process, not a word on stderr."""
    world: list[str] = []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        exc = _exit_at_commit(driver, world, 5)
    assert world == ["do a", "do b"]
    said = "\n".join(exc.__notes__)
    assert "the SystemExit came once the saga had committed: there is nothing to undo" in said
    assert "Ctrl-C" not in said
    texts = [str(w.message) for w in shown if w.category is RuntimeWarning]
    assert len(texts) == 1 and "sys.exit(5)" in texts[0] and "SystemExit came once" in texts[0]


@pytest.mark.parametrize("driver", ["list", "rollback"])
def test_a_sys_exit_warning_is_shown_each_time_at_the_callers_line(driver):
    """attack58 F7: the warning went through the default filter, shown once per library
    line: a cell run twice, the same step left undone, said nothing the second time."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")
        for _ in range(2):
            _exit_at_commit(driver, [], 3)
    ours = [w for w in shown if w.category is RuntimeWarning]
    assert len(ours) == 2, [str(w.message) for w in ours]
    assert all(w.filename == __file__ for w in ours), [w.filename for w in ours]


def test_a_pivot_sagas_commit_in_doubt_does_not_promise_a_rollback(tmp_path):
    """attack58 F9: a Ctrl-C as a pivot saga's commit was written said "if not, recover rolls
    it back"; recover leaves a saga past its irreversible step for a person. (The journal
    cannot be read back either here: else the run knows the commit did not land, attack70
    F4, and halts itself.)"""
    world: list[str] = []
    (_, _, undo_a), _ = world_steps(world, True)
    saga = Saga(
        [
            Step("a", lambda s: world.append("do a"), undo_a),
            Step("p", lambda s: world.append("do p"), kind="pivot"),
            Step("c", lambda s: world.append("do c"), kind="retriable"),
        ]
    )
    with Journal(str(tmp_path / "j.db")) as journal:
        real = journal.write

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            if any("committed" in str(s) for s in statements):
                raise KeyboardInterrupt
            return real(statements, **kw)

        def unread(saga_id):  # type: ignore[no-untyped-def]
            raise sqlite3.OperationalError("disk I/O error")

        journal.write, saga_of = write, journal.saga  # type: ignore[method-assign]
        journal.saga = unread  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt) as raised:
            saga.run({}, journal=journal, run_id="r")
        journal.write, journal.saga = real, saga_of  # type: ignore[method-assign]
    said = "\n".join(raised.value.__notes__)
    assert world == ["do a", "do p", "do c"]
    assert "came as the journal recorded the commit" in said
    assert "rolls it back" not in said and "leaves it for a person" in said


@pytest.mark.parametrize("graph", [False, True])
def test_a_sys_exit_once_an_engines_saga_committed_is_no_ctrl_c(graph):
    """attack58 F6 on an engine (BPMN): the exception's note and the warning said Ctrl-C."""
    from rollback_lessons.runners.bpmn import run_explicit

    world: list[str] = []

    def on_event(event) -> None:  # type: ignore[no-untyped-def]
        if event.kind == "committed":
            raise SystemExit(5)

    saga = Saga([Step(n, a, u) for n, a, u in world_steps(world)], name="s", on_event=on_event)
    with warnings.catch_warnings(record=True) as shown, pytest.raises(SystemExit) as raised:
        warnings.simplefilter("default")
        run_explicit(saga, {}, undo_order="reverse_start" if graph else "reverse")
    said = "\n".join(raised.value.__notes__)
    assert "the SystemExit came once the saga had committed" in said and "Ctrl-C" not in said
    texts = [str(w.message) for w in shown if w.category is RuntimeWarning]
    assert len(texts) == 1 and "Ctrl-C" not in texts[0], texts


def test_a_cancelled_arun_that_halted_names_what_it_left():
    """attack57 L3: asyncio.run's Ctrl-C cancels ``arun`` as d refuses; b's undo fails under
    policy halt: the CancelledError (the KeyboardInterrupt's context) carried the halted
    outcome and no note, so the terminal named nothing left for a person."""
    import asyncio

    world: list[str] = []
    task: list[asyncio.Task] = []

    def act(name: str):  # type: ignore[no-untyped-def]
        def action(state) -> None:  # type: ignore[no-untyped-def]
            world.append(f"do {name}")
            if name == "d":
                task[0].cancel()
                raise ValueError("d refuses")

        return action

    def undo(name: str):  # type: ignore[no-untyped-def]
        def back(state) -> None:  # type: ignore[no-untyped-def]
            if name == "b":
                raise ConnectionError("b's undo fails")
            world.append(f"undo {name}")

        return back

    saga = Saga([Step(n, act(n), undo(n)) for n in "abcd"], name="s", policy="halt")

    async def main() -> None:
        task.append(asyncio.ensure_future(saga.arun({})))
        await task[0]

    with pytest.raises(asyncio.CancelledError) as raised:
        asyncio.run(main())
    assert raised.value.outcome.status.value == "halted"  # type: ignore[attr-defined]
    assert raised.value.outcome.pending == ("b", "a")  # type: ignore[attr-defined]
    assert "rollback halted; left for a person: b, a" in raised.value.__notes__


def test_recover_of_a_pivot_saga_whose_commit_was_cut_names_the_steps_done_after_it(tmp_path):
    """attack60 F4 / attack62 F8: every step of a pivot saga returned and was journalled, the
    commit's write cut: recover told a person to "finish the steps after it forward by hand",
    which would make c again; it names the steps after the pivot the journal shows done."""
    import subprocess
    import sys

    from conftest import recover_command

    command, env = recover_command(tmp_path, tmp_path / "j.db")
    child = f"""
import sys
sys.path.insert(0, {str(tmp_path)!r})
from printing_reg import registry
from rollback_lessons import Saga, Step
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.registry import Compensation
journal = Journal({str(tmp_path / "j.db")!r})
real = journal.write
def write(statements, **kw):
    if any("committed" in str(s) for s in statements):
        raise KeyboardInterrupt
    return real(statements, **kw)
journal.write = write
def unread(saga_id):  # (the commit's fate unknown: nor can it be read back, attack70 F4)
    raise OSError("disk I/O error")
journal.saga = unread
undo = Compensation("u", registry.resolve("u"), registry).bind(step="a")
saga = Saga([Step("a", lambda s: None, undo),
             Step("p", lambda s: None, kind="pivot"),
             Step("c", lambda s: None, kind="retriable")], name="s")
try:
    saga.run({{}}, journal=journal, run_id="r")
except KeyboardInterrupt:
    print("CUT")
"""
    ran = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True)
    assert "CUT" in ran.stdout, ran.stderr[-2000:]
    said = subprocess.run(command, env=env, capture_output=True, text=True).stdout
    assert "halted" in said and "UNDID" not in said, said
    assert "finish the steps after it not yet done forward by hand" in said, said
    assert "done already: c)" in said, said


def test_a_sys_exit_warning_made_an_error_never_replaces_the_exit(capsys):
    """attack62 F6: under ``-W error`` the warning was raised inside the engine's handler: a
    RuntimeWarning came out instead of the SystemExit (exit 1, ``except SystemExit`` missed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exc = _exit_at_commit("list", [], 5)
    assert exc.code == 5
    assert "sys.exit(5)" in capsys.readouterr().err


def test_a_sys_exit_through_a_saga_run_in_anothers_step_says_both_sagas_notes():
    """attack62 F7: a saga run inside another saga's step calls sys.exit: only the inner
    saga's notes reached stderr; the outer's dead letter was said nowhere a person sees."""

    def inner_run(state) -> None:  # type: ignore[no-untyped-def]
        def leave(state) -> None:  # type: ignore[no-untyped-def]
            raise SystemExit(7)

        Saga([Step("i1", lambda s: None, lambda s: None), Step("i2", leave)], name="inner").run({})

    def refuse(state) -> None:  # type: ignore[no-untyped-def]
        raise RuntimeError("undo refused")

    outer = Saga([Step("o1", lambda s: None, refuse), Step("o2", inner_run)], name="outer")
    with warnings.catch_warnings(record=True) as shown, pytest.raises(SystemExit):
        warnings.simplefilter("default")
        outer.run({})
    texts = [str(w.message) for w in shown if w.category is RuntimeWarning]
    assert any("saga 'inner'" in t for t in texts), texts
    assert any("saga 'outer'" in t and "undo of o1" in t for t in texts), texts


def test_a_sys_exit_as_an_undos_record_is_written_is_named_and_said_on_stderr(tmp_path):
    """attack62 F9: the note said "the Ctrl-C cut the write of its record", and the warning,
    made before that note, left out that recover will call the undo again."""
    world: list[str] = []
    steps = world_steps(world, True)

    def refuse(state) -> None:  # type: ignore[no-untyped-def]
        raise ValueError("c refuses")

    saga = Saga([Step(n, a, u) for n, a, u in steps] + [Step("c", refuse)], name="s")
    with Journal(str(tmp_path / "j.db")) as journal:
        real = journal.write

        def write(statements, **kw):  # type: ignore[no-untyped-def]
            if any("undo_done" in str(s) for s in statements):
                raise SystemExit(143)
            return real(statements, **kw)

        journal.write = write  # type: ignore[method-assign]
        with warnings.catch_warnings(record=True) as shown, pytest.raises(SystemExit) as raised:
            warnings.simplefilter("default")
            saga.run({}, journal=journal, run_id="r")
        journal.write = real  # type: ignore[method-assign]
    said = "\n".join(raised.value.__notes__)
    assert "undo of 'b' ran here; the SystemExit cut the write of its record" in said, said
    assert "Ctrl-C" not in said
    texts = " ".join(str(w.message) for w in shown if w.category is RuntimeWarning)
    assert "the SystemExit cut the write of its record" in texts, texts


def test_a_sys_exit_in_a_journalled_rollback_is_one_warning_with_every_note(tmp_path):
    """attack280 F1: a sys.exit in an undo of a journalled saga.run gave two warnings, one
    per note, the first before the journal's notes were in (a stale one after a full disk:
    its "(the journal keeps them for recover)" taken back later). One warning now, after."""
    import sys

    from rollback_lessons.durable.registry import Registry

    def undo(step, idempotency_key=None):
        if step == "b":
            sys.exit()

    bound = Registry().add("exit_u", undo)
    saga = Saga([Step(n, lambda s: None, bound.bind(step=n)) for n in "abc"])
    with Journal(tmp_path / "j.db") as journal, warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as caught:
            saga.run({}, journal=journal, run_id="r1", inject={"c": "fail"})
    notes = [n for n in caught.value.__notes__ if n.startswith("rollback")]
    [warning] = [str(w.message) for w in said if issubclass(w.category, RuntimeWarning)]
    assert len(notes) == 2 and all(note in warning for note in notes), (notes, warning)
