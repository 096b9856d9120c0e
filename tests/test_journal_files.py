"""Journal paths and files (issue 25): any character in a path names that file and no other;
a read-only journal with a write-ahead log is read with it or refused in one line; schema
values of the wrong type, directories and overwritten pages are refused in one line before
any undo runs."""

import os
import random
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import orphan

from rollback_lessons import Saga, Step
from rollback_lessons.cli import main
from rollback_lessons.durable import journal as journal_module
from rollback_lessons.durable.journal import Journal, JournalError
from rollback_lessons.durable.recovery import recover
from rollback_lessons.durable.registry import Registry, compensation
from rollback_lessons.errors import InvalidNameError

registry = Registry()
CALLS: list[str] = []


@compensation("files.undo", registry)
def undo(step, idempotency_key=None):
    CALLS.append(step)


def _unfinished(path, n=3, run_id="s"):
    """A journal holding one saga that crashed mid-run, its undos pending."""
    with Journal(path) as journal:
        jrun = journal.start("saga", run_id)
        for i in range(n):
            jrun.register(f"step{i}", undo.bind(step=f"step{i}"))
    orphan(path, run_id)


@pytest.mark.parametrize("name", ["orders#2.db", "what?.db", "%41.db", "a b.db", "jöurnal ☃.db"])
def test_any_character_in_a_path_names_that_file(tmp_path, capsys, name):
    _unfinished(tmp_path / name, run_id="mine")
    with Journal(tmp_path / "orders.db") as other:  # a journal the bad parse would open
        other.start("theirs", "theirs").status("running", flush=True)
    with Journal(tmp_path / "A.db") as other:
        other.start("theirs", "theirs").status("running", flush=True)
    assert main(["journal", "show", str(tmp_path / name)]) == 0
    shown = capsys.readouterr().out
    assert "mine" in shown and "theirs" not in shown
    with Journal(tmp_path / name, readonly=True) as journal:
        assert [s.id for s in journal.sagas()] == ["mine"]


@pytest.mark.parametrize("through", ["its path", "a symlink in a read-only folder"])
def test_a_read_only_folder_with_a_write_ahead_log_is_refused_in_one_line(
    tmp_path, monkeypatch, through
):
    """attack204 F1 (12 of 12): through a symlink (in a read-only folder of its own), the
    folder and the -wal were looked for beside the link: none there, the journal was read
    without its log, and ``journal show`` listed no saga, exit 0."""
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "j.db"
    links = tmp_path / "links"
    links.mkdir()
    opened = path if through == "its path" else links / "j.db"
    if opened != path:
        opened.symlink_to(path)
    with Journal(path) as journal:
        journal.start("saga", "s").status("running", flush=True)
        copy = sqlite3.connect(path)  # keep a reader so that the WAL stays on close
        copy.execute("SELECT 1").fetchall()
        shutil.copy(path, tmp_path / "snap.db")
        shutil.copy(folder / "j.db-wal", tmp_path / "snap.db-wal")
        copy.close()
    shutil.rmtree(folder)
    folder.mkdir()
    shutil.copy(tmp_path / "snap.db", path)
    shutil.copy(tmp_path / "snap.db-wal", folder / "j.db-wal")  # no -shm: a bare copy
    assert (folder / "j.db-wal").stat().st_size > 0
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    os.chmod(links, stat.S_IRUSR | stat.S_IXUSR)
    if os.access(folder, os.W_OK):  # root may write anywhere: as SQLite would fail for others
        real_connect, real_access = sqlite3.connect, os.access

        class Unopenable:  # SQLite opens lazily: the first read fails (no -shm possible)
            def execute(self, *args):
                raise sqlite3.OperationalError("unable to open database file")

            def close(self):
                pass

        def connect(target, *args, **kw):
            if "mode=ro" in str(target):
                return Unopenable()
            return real_connect(target, *args, **kw)

        monkeypatch.setattr(journal_module.sqlite3, "connect", connect)
        read_only = {Path(os.path.realpath(f)) for f in (folder, links)}
        monkeypatch.setattr(
            journal_module.os, "access", lambda p, m: Path(p) not in read_only and real_access(p, m)
        )
    try:
        with pytest.raises(JournalError, match=r"write-ahead log .* folder is read-only"):
            Journal(opened, readonly=True)
    finally:
        os.chmod(folder, stat.S_IRWXU)
        os.chmod(links, stat.S_IRWXU)


def test_a_symlink_in_a_read_only_folder_to_a_journal_in_a_writable_one_is_written(
    tmp_path, monkeypatch
):
    """attack204 F2 (3 of 3): recover refused it, "the folder of .../journal.db is read-only;
    SQLite writes journal.db-wal beside it", though SQLite writes beside the journal itself."""
    path, links = tmp_path / "j.db", tmp_path / "links"
    Journal(path).close()
    links.mkdir()
    (links / "journal.db").symlink_to(path)
    os.chmod(links, stat.S_IRUSR | stat.S_IXUSR)
    real_access = os.access
    monkeypatch.setattr(  # (root writes anywhere: the folder is read-only to everyone else)
        journal_module.os, "access", lambda p, m: Path(p) != links and real_access(p, m)
    )
    try:
        with Journal(links / "journal.db") as journal:
            journal.start("saga", "s").status("running", flush=True)
        with Journal(path, readonly=True) as journal:
            assert [s.id for s in journal.sagas()] == ["s"]
    finally:
        os.chmod(links, stat.S_IRWXU)


@pytest.mark.parametrize("end", ["-shm", "-wal"])
def test_recover_names_the_read_only_wal_or_shm_not_the_journal(tmp_path, monkeypatch, capsys,
                                                                end):  # fmt: skip
    """attack76 F4: with the journal writable and only its ``-shm`` (or ``-wal``) read-only,
    recover said "cannot use j.db: attempt to write a readonly database": the line names the
    file that is read-only, as it names a read-only journal; exit 2, no undo run."""
    path = tmp_path / "j.db"
    _unfinished(path)
    keep = sqlite3.connect(path)  # (a reader: the -wal and -shm stay, as after a crash)
    keep.execute("SELECT count(*) FROM sagas").fetchall()
    side = tmp_path / f"j.db{end}"
    assert side.exists() and (tmp_path / "j.db-wal").exists()
    os.chmod(side, stat.S_IRUSR)
    if os.access(side, os.W_OK):  # root may write anything: as the modes say to others
        real = os.access
        monkeypatch.setattr(journal_module.os, "access", lambda p, m: p != side and real(p, m))
    CALLS.clear()
    try:
        assert main(["recover", str(path), "--registry", __name__]) == 2
    finally:
        os.chmod(side, stat.S_IRUSR | stat.S_IWUSR)
        keep.close()
    said = capsys.readouterr().err
    assert said.strip() == (
        f"rollback-lessons: {side} is read-only; this command writes to it (make it writable first)"
    )
    assert CALLS == []


@pytest.mark.parametrize("parent", ["missing/sub", "a-file"])
def test_a_journal_in_a_folder_that_does_not_exist_says_so(tmp_path, parent):
    """attack26 F3: it said "the folder of ... is read-only" (os.access is False for a
    missing folder), a false reason; nothing is made."""
    (tmp_path / "a-file").write_text("not a folder")
    path = tmp_path / parent / "j.db"
    with pytest.raises(JournalError, match=r"is not a folder that exists") as refused:
        Journal(path)
    assert "read-only" not in str(refused.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


@pytest.mark.parametrize("value", ["two", "", None, "-1", "2.5", " 7", "\u0667", "7\n", "07", "0"])
def test_a_schema_version_of_the_wrong_type_or_missing_is_refused_in_one_line(tmp_path, value):
    path = tmp_path / "j.db"
    _unfinished(path)
    con = sqlite3.connect(path)
    if value is None:
        con.execute("DELETE FROM meta WHERE key = 'schema_version'")
    else:
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    con.commit()
    con.close()
    for readonly in (False, True):
        with pytest.raises(JournalError, match="no valid journal schema_version"):
            Journal(path, readonly=readonly)


def test_a_directory_as_the_journal_is_refused(tmp_path, capsys):
    assert main(["journal", "show", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().endswith("is a directory, not a journal")
    with pytest.raises(JournalError, match="is a directory"):
        Journal(tmp_path)


def test_a_path_ending_in_a_slash_names_a_folder_and_is_refused(tmp_path, capsys, monkeypatch):
    """attack291 F3: ``Journal('journals/')`` made (and ``recover journals/`` recovered) the
    file ``journals``: a path is always a file, and one ending in a slash names a folder."""
    monkeypatch.chdir(tmp_path)
    shows = [["journal", "show", name] for name in ("journals/", "journals/.")]
    for command in (*shows, ["recover", "j.db/", "--registry", "x"], ["recover", "j.db/.."]):
        with pytest.raises(SystemExit) as usage:
            main(command)
        assert usage.value.code == 2 and "is a folder's name" in capsys.readouterr().err
    for path in ("journals/", "journals/.", "."):  # (attack294 F4: "x/." made the file x)
        with pytest.raises(ValueError, match="is a folder's name"):
            Journal(path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("end", ["-wal", "-shm"])
@pytest.mark.parametrize("odd", ["folder", "symlink"])
def test_a_wal_or_shm_that_is_a_folder_or_a_symlink_is_named_as_such(tmp_path, capsys, end, odd):
    """attack291 F4: the line blamed the journal's file ("cannot use j.db: Is a directory",
    "unable to open database file"), sending the operator to the wrong file."""
    path = tmp_path / "j.db"
    _unfinished(path)
    beside = tmp_path / f"j.db{end}"
    if beside.exists():
        beside.rename(tmp_path / "kept")
    if odd == "folder":
        beside.mkdir()
    else:
        beside.symlink_to(tmp_path / "kept")
    assert main(["journal", "show", str(path)]) == 2
    what = "write-ahead log (-wal)" if end == "-wal" else "shared-memory file (-shm)"
    how = (
        "not a regular file" if odd == "folder" else "a symbolic link, which SQLite does not follow"
    )
    assert (
        capsys.readouterr().err
        == f"rollback-lessons: {path} is damaged (its {what} is {how}); it was not changed\n"
    )


def test_a_schema_whose_table_name_is_not_utf8_is_refused_in_one_line(tmp_path, capsys):
    """attack281 F2: one byte of ``sqlite_master``'s name of the sagas table made not UTF-8:
    SQLite's error names it, Python could not read that error (a UnicodeDecodeError, not an
    sqlite3 error): journal show, recover and settle ended in a 27-line traceback, exit 1
    (the status of sagas left unfinished)."""
    path = tmp_path / "j.db"
    Journal(path).close()  # (closed whole: the file alone)
    data = bytearray(path.read_bytes())
    data[data.index(b"tablesagassagas") + 8] = 0xF0  # ('sag\xf0s')
    path.write_bytes(bytes(data))
    for args in (["journal", "show", str(path)], ["recover", str(path), "--registry", "x"],
                 ["journal", "settle", str(path), "r1", "--note", "x"]):  # fmt: skip
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "is not a readable journal (corrupt?)" in err, err
    with pytest.raises(JournalError, match="not a readable journal"):
        Journal(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="gives the journal to another user (root only)")
def test_a_look_at_another_users_journal_at_rest_leaves_no_file_beside_it(tmp_path, capsys):
    """attack281 F1: `journal show` by another user (root too) of a journal at rest (no
    -wal) made its -wal and -shm, that user's: its owner could write it no more (its next
    saga and recover refused, the files not its to remove). Read as immutable now."""
    path = tmp_path / "j.db"
    Journal(path).close()
    os.chown(path, 65534, 65534)  # (nobody's)
    try:
        assert main(["journal", "show", str(path)]) == 0
        with Journal(path, readonly=True) as read:
            assert read.sagas() == []
            assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]
            with Journal(path) as owner:  # (written meanwhile, closed: read as it lies now,
                Saga([Step("a", lambda s: None)]).run({}, journal=owner, run_id="r1")
            assert [s.id for s in read.sagas()] == ["r1"]  # not as it lay: attack282 F1)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]
    finally:
        os.chown(path, 0, 0)
    capsys.readouterr()


def test_overwritten_pages_are_refused_before_any_undo(tmp_path):
    """Random pages overwritten with random bytes: recover either refuses the file in one
    line (a JournalError) having run no undo, or finishes it."""
    rng = random.Random(25)
    _unfinished(tmp_path / "clean.db", n=12)
    for trial in range(int(os.environ.get("OVERWRITE_TRIALS", "30"))):
        path = tmp_path / f"t{trial}.db"
        shutil.copy(tmp_path / "clean.db", path)
        size = path.stat().st_size
        page = 4096
        with open(path, "r+b") as f:
            f.seek(rng.randrange(1, size // page) * page + rng.randrange(0, page // 2))
            f.write(rng.randbytes(rng.choice([8, 64, 512, page])))
        CALLS.clear()
        try:
            with Journal(path, create=False) as journal:
                recover(journal, registry)
        except (JournalError, sqlite3.DatabaseError) as exc:  # the CLI: one line, exit 2
            assert "\n" not in str(exc)
            assert CALLS == [], (trial, str(exc))


def test_a_schema_version_older_than_its_tables_is_refused_in_one_line(tmp_path):
    """attack48 L1: the migration's raw 'duplicate column name', said beside the -wal."""
    path = tmp_path / "j.db"
    Journal(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match=r"schema_version \(6\) is older than its tables") as e:
        Journal(path)
    assert "-wal" not in str(e.value) and len(str(e.value).splitlines()) == 1
    con = sqlite3.connect(path)  # (not changed)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("6",)
    con.close()


def test_a_journal_with_a_second_name_a_hard_link_is_refused_before_any_undo(tmp_path, capsys):
    """attack50 F4: SQLite names the write-ahead log after the path, so two recovers through
    two hard-linked names (``ln j.db hard.db``, a ``cp -al`` backup tree) did not see each
    other's claims: both took every saga, each undo ran twice. Refused in one line by either
    name, nothing run; a symlink is one name and stays fine; a journal being created (its
    hidden name linked for a moment) is not refused."""
    path = tmp_path / "j.db"
    _unfinished(path)
    os.link(path, tmp_path / "hard.db")
    CALLS.clear()
    for name in ("j.db", "hard.db"):
        assert main(["recover", str(tmp_path / name), "--registry", __name__]) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert "1 other name (hard links)" in line
        with pytest.raises(JournalError, match="hard links"):
            Journal(tmp_path / name)
    assert CALLS == []
    os.unlink(tmp_path / "hard.db")
    os.symlink(path, tmp_path / "soft.db")
    with Journal(tmp_path / "soft.db") as journal:
        assert [r.status for r in recover(journal, registry).recovered] == ["rolled_back"]
    creating = tmp_path / ".new.db.123-abcdef01.creating"  # (as ``_create_whole`` links it)
    Journal(tmp_path / "new.db").close()
    os.link(tmp_path / "new.db", creating)
    Journal(tmp_path / "new.db").close()


def test_a_journal_file_mounted_onto_another_path_is_refused_there(tmp_path):
    """attack53 F7: a single-file bind mount (a container's volume, ``-v /host/j.db:/app/j.db``)
    is one name on each side, so the hard-link refusal missed it: two recovers through the
    two paths kept two write-ahead logs, each took every saga and ran each undo twice. The
    mounted path is refused in one line; the file's own path still works."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) for a private mount namespace")
    path = tmp_path / "j.db"
    _unfinished(path)
    (tmp_path / "app").mkdir()
    mounted = tmp_path / "app" / "j.db"
    mounted.touch()
    script = (
        f"mount --bind '{path}' '{mounted}' || exit 77; "
        f"'{sys.executable}' -m rollback_lessons journal show '{mounted}'; echo \"rc=$?\"; "
        f"'{sys.executable}' -m rollback_lessons journal show '{path}' >/dev/null; echo \"rc=$?\""
    )
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    if done.returncode == 77 or "unshare:" in done.stderr:
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()[:200]}")
    assert done.stdout.splitlines()[-2:] == ["rc=2", "rc=0"], done
    assert "is a file mounted onto its path" in done.stderr


def test_a_run_id_not_in_nfc_form_is_refused_before_anything_is_written(tmp_path):
    """attack291 F5: 'café' typed two ways (é, or e and a combining accent) were two ids that
    print alike in every line: `journal settle` settled whichever the typed bytes matched."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        with pytest.raises(InvalidNameError, match=r"NFC form.*'cafe\\u0301' prints as 'caf\\xe9'"):
            Saga([Step("a", lambda s: None)]).run({}, journal=journal, run_id="cafe\u0301")
        Saga([Step("a", lambda s: None)]).run({}, journal=journal, run_id="caf\u00e9")
        assert [s.id for s in journal.sagas()] == ["caf\u00e9"]


def test_journal_undos_reads_every_column_recover_reads(tmp_path):
    """attack292 F1: ``Journal.undos`` gave semantic=False and timeout=None for an undo
    logged with ``undo_timeout`` and ``semantic`` (recover, reading the rows its own way,
    kept both): a person or a tool reading the journal saw other values."""
    path = tmp_path / "j.db"
    steps = [Step("a", lambda s: None, undo.bind(step="a"), undo_timeout=0.3, semantic=True),
             Step("b", lambda s: None, undo.bind(step="b"), undo_timeout=2),
             Step("c", lambda s: 1 / 0)]  # fmt: skip
    with Journal(path) as journal:
        Saga(steps).run({}, journal=journal, run_id="s", policy="halt")
        shown = [(u.step, u.semantic, u.timeout, u.args) for u in journal.undos("s")]
    assert shown == [("a", True, 0.3, {"step": "a"}), ("b", False, 2, {"step": "b"})]


@pytest.mark.parametrize("end", ["-wal", "-shm"])
def test_a_stray_wal_or_shm_with_no_journal_is_not_called_a_damaged_journal(tmp_path, capsys, end):
    """attack294 F6: a -wal or -shm folder (or symlink) with no journal file beside it was
    "X.db is damaged ...; it was not changed", of a file that does not exist."""
    (tmp_path / f"a.db{end}").mkdir()
    assert main(["journal", "show", str(tmp_path / "a.db")]) == 2
    said = capsys.readouterr().err
    assert said.startswith(
        f"rollback-lessons: no journal at {tmp_path / 'a.db'}, but beside it its "
    )
    assert "is not a regular file; nothing was changed" in said and not (tmp_path / "a.db").exists()


def test_settle_given_a_saga_id_in_another_unicode_form_settles_the_one_shown(tmp_path):
    """attack294 F7: ``journal settle j.db 'cafe\\u0301'`` (a paste's NFD) said "no saga
    'café'" beside a saga `journal show` lists as café (its NFC id)."""
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        saga = Saga([Step("a", lambda s: None, failing.bind(step="a")), Step("b", lambda s: 1 / 0)])
        saga.run({}, journal=journal, run_id="caf\u00e9")  # (its undo fails: for a person)
        assert journal.settle("cafe\u0301", "refunded by hand").saga_id == "caf\u00e9"
        with pytest.raises(JournalError, match="no saga 'nowhere'"):
            journal.settle("nowhere", "refunded by hand")


@compensation("files.failing", registry)
def failing(step, idempotency_key=None):
    raise ConnectionError("the card service is down")
