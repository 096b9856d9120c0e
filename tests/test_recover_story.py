"""Recover tells the same story as the process would (issue 25): a semantic undo keeps the
run rollback_incomplete; arguments come back exactly as bound (what JSON would change is
refused when binding); dead letters and a registry that exits on import are not exit 0."""

import textwrap

import pytest
from conftest import orphan

from rollback_lessons import Saga, Status, Step
from rollback_lessons.cli import main
from rollback_lessons.durable.journal import Journal
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation


def test_a_semantic_undo_is_rollback_incomplete_after_recover_as_in_process(tmp_path):
    registry, calls = Registry(), []
    correct = compensation("story.correct", registry)(
        lambda step, idempotency_key=None: calls.append(step)
    )
    saga = Saga(
        [
            Step("a", lambda s: None, correct.bind(step="a")),
            Step("mail", lambda s: None, correct.bind(step="mail"), semantic=True),
            Step("boom", lambda s: 1 / 0),
        ]
    )
    in_process = saga.run({})
    assert in_process.status is Status.ROLLBACK_INCOMPLETE
    calls.clear()
    with Journal(tmp_path / "j.db") as journal:  # the same saga, killed before its rollback
        jrun = journal.start("saga", "s")
        jrun.register("a", correct.bind(step="a"))
        jrun.register("mail", correct.bind(step="mail"), "pending", True)
    orphan(tmp_path / "j.db", "s")
    with Journal(tmp_path / "j.db") as journal:
        report = recover(journal, registry)
    assert calls == ["mail", "a"]
    assert report.recovered[0].status is Status.ROLLBACK_INCOMPLETE
    assert report.recovered[0].semantic == ("mail",)


@pytest.mark.parametrize("cancel", [False, True])
def test_a_correction_made_before_the_crash_keeps_the_recovered_saga_incomplete(tmp_path, cancel):
    """attack42 F15: the semantic undo ran in the process, a Ctrl-C (or a kill) landed in the
    next undo; recover, running only that one, called the saga rolled_back (or cancelled),
    and the journal kept it: the world as it was, which a correction does not give."""
    registry, calls = Registry(), []

    def undo(step: str, idempotency_key: str | None = None) -> None:
        if step == "a" and "a" not in calls and not calls.count("x"):
            calls.append("x")  # (the first call of a's undo is cut, once)
            raise KeyboardInterrupt("Ctrl-C in a's undo")
        calls.append(step)

    correct = compensation("story.cut", registry)(undo)
    saga = Saga(
        [
            Step("a", lambda s: None, correct.bind(step="a")),
            Step("mail", lambda s: sent.append(1), correct.bind(step="mail"), semantic=True),
            Step("boom", lambda s: 1 / 0),
        ]
    )
    sent: list[int] = []  # (the caller cancels once the mail is sent: boom never runs)
    with Journal(tmp_path / "j.db") as journal, pytest.raises(KeyboardInterrupt):
        saga.run({}, journal=journal, run_id="s", cancel=(lambda: bool(sent)) if cancel else None)
    orphan(tmp_path / "j.db", "s")
    with Journal(tmp_path / "j.db") as journal:
        report = recover(journal, registry)
        kept = journal.saga("s").status
    assert calls == ["mail", "x", "a"]
    assert report.recovered[0].status is Status.ROLLBACK_INCOMPLETE
    assert report.recovered[0].semantic == ("mail",)
    assert kept == Status.ROLLBACK_INCOMPLETE.value


@pytest.mark.parametrize(
    "args",
    [{"amounts": {1: 10}}, {"pair": (1, 2)}, {"nested": [{"k": (1,)}]}, {"keys": {None: 1}}],
)
def test_arguments_json_would_change_are_refused_when_binding(args):
    undo = compensation("story.undo", Registry())(lambda **kw: None)
    with pytest.raises(TypeError, match="would not survive the journal"):
        undo.bind(**args)


def test_arguments_come_back_exactly(tmp_path):
    registry, seen = Registry(), []
    undo = compensation("story.exact", registry)(lambda idempotency_key=None, **kw: seen.append(kw))
    args = {"amounts": {"room": 120, "fee": 2.5}, "tags": ["a", None, True], "note": "é"}
    with Journal(tmp_path / "j.db") as journal:
        journal.start("saga", "s").register("x", undo.bind(**args))
    orphan(tmp_path / "j.db", "s")
    with Journal(tmp_path / "j.db") as journal:
        recover(journal, registry)
    assert seen == [args] and type(seen[0]["amounts"]["room"]) is int


def _module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))


def test_dead_letters_are_not_exit_0(tmp_path, monkeypatch, capsys):
    body = "from rollback_lessons.durable.registry import Registry, compensation\n"
    body += "registry = Registry()\n"
    body += "fails = compensation('story.fails', registry)(lambda **kw: 1 / 0)\n"
    _module(tmp_path, monkeypatch, "story_failing", body)
    import story_failing

    with Journal(tmp_path / "j.db") as journal:
        journal.start("saga", "s").register("x", story_failing.fails.bind())
    orphan(tmp_path / "j.db", "s")
    code = main(["recover", str(tmp_path / "j.db"), "--registry", "story_failing"])
    captured = capsys.readouterr()
    assert code == 1 and "dead letters" in captured.err
    assert "rollback_incomplete" in captured.out


def test_a_registry_module_that_exits_on_import_is_an_error(tmp_path, monkeypatch, capsys):
    _module(tmp_path, monkeypatch, "story_exits", "import sys\nsys.exit(0)\n")
    with Journal(tmp_path / "j.db") as journal:
        journal.start("saga", "s").status("running", flush=True)
    code = main(["recover", str(tmp_path / "j.db"), "--registry", "story_exits"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "called sys.exit(0)" in err and len(err.splitlines()) == 1


def test_a_saga_recover_leaves_halted_by_its_undo_policy_says_which_undo_why_and_what_is_left(
    tmp_path, monkeypatch, capsys
):
    """attack14 N-b: recover's line for a saga its undo policy (halt) left for a person was
    ``r (hl): halted; `` (nothing after it). Now it names the undo that failed, its error,
    and what is pending; the journal's error says so too."""
    from rollback_lessons.policies import HALT

    body = "from rollback_lessons.durable.registry import Registry, compensation\n"
    body += "registry = Registry()\n"
    body += "ok = compensation('story.ok', registry)(lambda **kw: None)\n"
    body += "def no(**kw):\n    raise RuntimeError('the bank said no')\n"
    body += "no = compensation('story.no', registry)(no)\n"
    _module(tmp_path, monkeypatch, "story_halting", body)
    import story_halting

    with Journal(tmp_path / "j.db") as journal:
        jrun = journal.start("hl", "r", policy=HALT)
        jrun.register("a", story_halting.ok.bind())
        jrun.register("b", story_halting.no.bind())
    orphan(tmp_path / "j.db", "r")
    code = main(["recover", str(tmp_path / "j.db"), "--registry", "story_halting"])
    out = capsys.readouterr().out.splitlines()
    said = (
        "r (hl): halted; the undo of b failed (RuntimeError('the bank said no')) and the undo "
        "policy halts for a person; pending: b, a"
    )
    assert code == 1 and out[0] == said
    with Journal(tmp_path / "j.db") as journal:
        assert journal.saga("r").error == said.split("halted; ")[1]
