"""`rollback-lessons lab [DIR]`: the lessons copied into a learner's folder on first use,
never overwriting a lesson the learner changed (a newer one goes beside it, and the
command says so), and JupyterLab started there on 127.0.0.1."""

import json
import os
import secrets
import stat
import subprocess
import sys

import pytest

from rollback_lessons import cli
from rollback_lessons.lab import launch


def lessons(folder, texts):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    return folder


def test_the_lessons_are_found_in_a_checkout_and_each_is_copied_on_first_use(tmp_path):
    source = launch.shipped_lessons()
    assert (source / "01_rollback_basics.ipynb").exists()
    done = launch.install(tmp_path / "mine", source)
    names = sorted(p.name for p in source.glob(launch.LESSONS))
    assert done.new == names and sorted(p.name for p in done.folder.glob("*.ipynb")) == names
    assert f"copied {len(names)} lessons into {done.folder}" in done.lines()
    again = launch.install(tmp_path / "mine", source)
    assert again.lines() == []  # nothing new, nothing said


def test_a_lesson_the_learner_changed_is_kept_and_a_newer_one_goes_beside_it(tmp_path):
    v1 = lessons(tmp_path / "v1", {"01_a.ipynb": "one", "02_b.ipynb": "two"})
    mine = tmp_path / "mine"
    launch.install(mine, v1)
    (mine / "01_a.ipynb").write_text("one, with my answers")
    assert launch.install(mine, v1).lines() == []  # changed, but nothing newer: kept quietly
    v2 = lessons(tmp_path / "v2", {"01_a.ipynb": "one, better", "02_b.ipynb": "two, better"})
    done = launch.install(mine, v2)
    assert (mine / "01_a.ipynb").read_text() == "one, with my answers"  # never overwritten
    [(yours, newer)] = done.beside
    assert yours == "01_a.ipynb" and (mine / newer).read_text() == "one, better"
    assert f"kept your 01_a.ipynb; the newer lesson is beside it: {newer}" in done.lines()
    assert done.updated == ["02_b.ipynb"]  # untouched: brought up to date
    assert (mine / "02_b.ipynb").read_text() == "two, better"
    assert launch.install(mine, v2).lines() == []  # said once


def test_a_folder_made_by_hand_counts_as_the_learners_own(tmp_path):
    mine = lessons(tmp_path / "mine", {"01_a.ipynb": "my own"})
    done = launch.install(mine, lessons(tmp_path / "v1", {"01_a.ipynb": "shipped"}))
    assert (mine / "01_a.ipynb").read_text() == "my own" and done.beside
    manifest = json.loads((mine / launch.MANIFEST).read_text())
    assert "01_a.ipynb" not in manifest["files"]


def test_the_lab_is_bound_to_localhost_on_the_given_port(tmp_path):
    command = launch.lab_command(tmp_path, 8899)
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]  # this Python's own Lab
    assert "--ServerApp.ip=127.0.0.1" in command and "--port=8899" in command
    assert f"--ServerApp.root_dir={tmp_path}" in command and "--no-browser" in command
    assert "--ServerApp.port_retries=0" in command


def test_the_command_refuses_a_file_and_a_bad_port_in_one_line(tmp_path, capsys):
    (tmp_path / "a file").write_text("")
    assert cli.main(["lab", str(tmp_path / "a file"), "--port", "9999"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err
    assert cli.main(["lab", str(tmp_path / "x"), "--port", "0"]) == 2
    assert "is not a port" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-done


def test_a_port_in_use_is_refused_in_one_line_before_anything_is_copied(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["lab", str(tmp_path / "x"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} on 127.0.0.1 is in use" in err
    assert "--port N" in err and not (tmp_path / "x").exists()


def test_a_port_a_stopped_lab_left_in_time_wait_is_free_and_one_listened_on_is_not():
    """A JupyterLab just stopped leaves its connections in TIME_WAIT on its port for up to
    a minute: a plain bind is refused there, JupyterLab's own (SO_REUSEADDR) is not, so a
    relaunch on that port is let through; a port something listens on is refused."""
    import socket

    def server() -> socket.socket:  # as JupyterLab (Tornado) binds
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        return sock

    with server() as old:
        old.bind(("127.0.0.1", 0))
        old.listen()
        port = old.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as browser:
            served, _ = old.accept()
            served.close()  # the server closes first: its end waits in TIME_WAIT
            assert browser.recv(1) == b""
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # (the old check: refused)
    launch.port_free(port)  # no LabError
    with server() as relaunched:
        relaunched.bind(("127.0.0.1", port))
        relaunched.listen()
        with pytest.raises(launch.LabError, match=f"port {port} on 127.0.0.1 is in use"):
            launch.port_free(port)


def test_one_new_lesson_is_said_in_the_singular(tmp_path):
    source = launch.shipped_lessons()
    launch.install(tmp_path / "mine", source)
    (tmp_path / "mine" / "03_when_an_undo_fails.ipynb").unlink()
    again = launch.install(tmp_path / "mine", source)
    assert f"copied 1 lesson into {again.folder}" in again.lines()


def test_the_settings_shipped_with_the_wheel_are_the_commands_own():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[1] / "jupyter-config" / "rollback-lessons.json"
    assert json.loads(shipped.read_text()) == launch.LAB_SETTINGS


@pytest.mark.parametrize("argv", [["lab", "--help"]])
def test_help_says_what_the_command_does(argv, capsys):
    assert cli.main(argv) == 0  # (--help's SystemExit(0) is caught: its text flushed, exit 0)
    out = capsys.readouterr().out
    assert "never overwritten" in out and "127.0.0.1" in out


def test_the_kernels_websocket_is_started_without_nagles_algorithm(monkeypatch):
    """Every start of JupyterLab (this command, make lab, the browser tests, the benchmark)
    names the connection class that sets TCP_NODELAY on the kernel's websocket once it is
    open: without it, the messages after a click's "busy" waited ~45 ms for the browser's
    delayed ACK (kernel_ws.py)."""
    from jupyter_server.services.kernels.connection.channels import (
        ZMQChannelsWebsocketConnection,
    )
    from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

    from rollback_lessons.lab import kernel_ws

    flag = f"--ServerApp.kernel_websocket_connection_class={launch.KERNEL_CONNECTION}"
    assert flag in launch.lab_command(launch.shipped_lessons(), 8899)
    assert f"{kernel_ws.__name__}.NoDelayConnection" == launch.KERNEL_CONNECTION
    assert issubclass(kernel_ws.NoDelayConnection, ZMQChannelsWebsocketConnection)

    done = []
    monkeypatch.setattr(ZMQChannelsWebsocketConnection, "connect", lambda self: done.append(1))
    handler = KernelWebsocketHandler.__new__(KernelWebsocketHandler)
    handler.set_nodelay = lambda value: done.append(("nodelay", value))  # type: ignore[method-assign]
    kernel_ws.NoDelayConnection(websocket_handler=handler).connect()
    assert done == [("nodelay", True), 1]  # set before the connection's own work


def test_the_command_passes_its_own_settings_so_news_and_update_checks_are_off_in_any_venv(
    tmp_path, monkeypatch
):
    """A venv built without `make lab`, or the wheel's, has no overrides.json of ours in
    JupyterLab's own settings folder: the command writes its own and names it."""
    pytest.importorskip("jupyterlab")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    started = []

    def execv(path, command):  # JupyterLab would take the process over here
        started.append(command)
        raise SystemExit(0)

    monkeypatch.setattr(launch.os, "name", "posix")
    monkeypatch.setattr(launch.os, "execv", execv)
    with pytest.raises(SystemExit):
        launch.open_lab(tmp_path / "class", 8899, say=lambda line: None)
    [command] = started
    [flag] = [c for c in command if c.startswith("--LabApp.app_settings_dir=")]
    settings = launch.Path(flag.split("=", 1)[1])
    assert settings == launch.settings_home() and str(tmp_path / "data") in str(settings)
    overrides = json.loads((settings / "overrides.json").read_text())
    news = overrides["@jupyterlab/apputils-extension:notification"]
    assert news["fetchNews"] == "false" and news["checkForUpdates"] is False


def test_the_settings_keep_what_jupyterlab_would_read_and_put_ours_on_top(tmp_path):
    source = tmp_path / "lab-settings"
    (source / "overrides.d").mkdir(parents=True)
    (source / "overrides.d" / "other.json").write_text('{"x": {"y": 1}}')
    (source / "page_config.json").write_text('{"disabledExtensions": {}}')
    plugin = "@jupyterlab/apputils-extension:notification"
    (source / "overrides.json").write_text(
        json.dumps({plugin: {"fetchNews": "true", "doNotDisturbMode": True}, "a": {"b": 2}})
    )
    target = launch.lab_settings(tmp_path / "ours", source)
    assert (target / "overrides.d" / "other.json").exists() and (
        target / "page_config.json"
    ).exists()
    overrides = json.loads((target / "overrides.json").read_text())
    assert overrides["a"] == {"b": 2}
    assert overrides[plugin] == {**launch.LAB_SETTINGS[plugin], "doNotDisturbMode": True}
    (source / "overrides.json").write_text("not json")  # a broken file: ours still hold
    again = launch.lab_settings(tmp_path / "ours", source)
    assert json.loads((again / "overrides.json").read_text()) == launch.LAB_SETTINGS
    assert launch.lab_settings(tmp_path / "none", tmp_path / "missing").is_dir()


RUN_ALL = "async () => await window.jupyterapp.commands.execute('notebook:run-all-cells') === true"
CELLS = """() => { const w = window.jupyterapp.shell.currentWidget, cells = w.content.model.cells;
    const out = []; for (let i = 0; i < cells.length; i++) { const c = cells.get(i);
      out.push([c.executionCount, c.outputs.length ? c.outputs.get(0).toJSON().text : null]); }
    return out; }"""
# what the page was told of its extension manager (its panel shows the name: "PyPI" by default)
MANAGER = """() => {
    const config = JSON.parse(document.getElementById('jupyter-config-data').textContent);
    const m = config.extensionManager; return {name: m.name, can_install: m.can_install}; }"""


@pytest.mark.browser
def test_run_all_while_the_kernel_starts_says_so_and_keeps_every_output(tmp_path):
    """Run All chosen in a lesson's first seconds, before JupyterLab has its kernel: by
    default JupyterLab 4 "runs" each code cell by clearing its outputs and count (no kernel
    yet, nothing is sent; the kernel then sits idle) and its autosave writes the lesson back
    without them (issue 24: newuser11 #7, newuser12 #2). With the command's settings
    (LAB_SETTINGS) it says the kernel is still starting and changes nothing; Run All once the
    kernel is up runs every cell. Here the kernel's start (the page's POST /api/sessions) is
    held until Run All was chosen: the moment a learner's click lands on a busy machine."""
    nbformat = pytest.importorskip("nbformat")
    import test_browser as tb  # its Chromium, its JupyterLab's environment and start
    from playwright.sync_api import sync_playwright

    from rollback_lessons.runners import free_port

    chromium = tb._chromium()  # skipped without one (a failure in CI)
    root, name = tmp_path / "lessons", "run_all.ipynb"
    root.mkdir()
    nb = nbformat.v4.new_notebook()  # two cells as committed: counts 7 and 8, their outputs
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for count, text in [(7, "committed one\n"), (8, "committed two\n")]:
        cell = nbformat.v4.new_code_cell(f"print('ran', {count - 6})", execution_count=count)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        nb.cells.append(cell)
    nbformat.write(nb, root / name)
    committed = [[7, "committed one\n"], [8, "committed two\n"]]
    port, token = free_port(), secrets.token_hex(16)
    log = tmp_path / "lab.log"
    process = subprocess.Popen(
        [*launch.lab_command(root, port, launch.lab_settings(tmp_path / "app-settings")),
         f"--IdentityProvider.token={token}", f"--LabApp.user_settings_dir={tmp_path / 'us'}",
         f"--LabApp.workspaces_dir={tmp_path / 'ws'}"],
        env=tb.jupyter_env(tmp_path), stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    held = []  # the kernel's start (the page's POST /api/sessions), let through later

    def hold_the_kernels_start(route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    try:
        tb.wait_for_lab(url, process, log, token)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=tb.CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=tb.VIEWPORT)
                page.set_default_timeout(60_000)
                page.route("**/api/sessions*", hold_the_kernels_start)
                with page.expect_request(lambda r: r.method == "POST" and "/api/sessions" in r.url):
                    page.goto(f"{url}/lab/tree/{name}?reset&token={token}")
                assert page.evaluate(CELLS) == committed
                assert page.evaluate(MANAGER) == {"name": "read-only", "can_install": False}
                ran = page.evaluate(RUN_ALL)
                assert page.evaluate(CELLS) == committed  # by default: [[None, None], [None, None]]
                assert ran is False  # refused (by default "done", though nothing ran)
                page.wait_for_function(
                    "() => document.body.innerText.includes('is still initializing')"
                )  # what the learner reads: run the cells once the kernel has started
                for route in held:
                    route.continue_()
                page.wait_for_function(tb.IDLE)
                assert page.evaluate(RUN_ALL) is True
                page.wait_for_function(
                    f"() => ({CELLS})().every(([n, out]) => out?.startsWith('ran'))"
                )
                assert page.evaluate(CELLS) == [[1, "ran 1\n"], [2, "ran 2\n"]]
            finally:
                browser.close()
    finally:
        tb.stop(process)


def test_a_newer_lesson_beside_is_the_learners_once_changed_and_never_overwritten(
    tmp_path, monkeypatch
):
    """attack41 F6: the "(new in X)" copy the learner worked in was rewritten by the next
    launch. It is recorded; once changed it is theirs; an even newer lesson goes beside it
    under its own version's name (or, the same version, a numbered one), and it is said."""
    monkeypatch.setattr(launch, "version", lambda: "1.1")
    mine = tmp_path / "mine"
    launch.install(mine, lessons(tmp_path / "v1", {"01_a.ipynb": "one"}))
    (mine / "01_a.ipynb").write_text("one, with my answers")
    v2 = lessons(tmp_path / "v2", {"01_a.ipynb": "one, better"})
    [(_, newer)] = launch.install(mine, v2).beside
    assert newer == "01_a (new in 1.1).ipynb"
    manifest = json.loads((mine / launch.MANIFEST).read_text())
    assert manifest["beside"][newer]["lesson"] == "01_a.ipynb"
    (mine / newer).write_text("one, better, with my new answers")  # the learner works there
    assert launch.install(mine, v2).lines() == []  # they have the newest lesson: quiet
    assert (mine / newer).read_text() == "one, better, with my new answers"
    assert (mine / "01_a.ipynb").read_text() == "one, with my answers"

    monkeypatch.setattr(launch, "version", lambda: "1.2")
    v3 = lessons(tmp_path / "v3", {"01_a.ipynb": "one, best"})
    done = launch.install(mine, v3)
    assert done.beside == [("01_a.ipynb", "01_a (new in 1.2).ipynb")]
    assert "the newer lesson is beside it: 01_a (new in 1.2).ipynb" in done.lines()[0]
    assert (mine / "01_a (new in 1.2).ipynb").read_text() == "one, best"
    assert (mine / newer).read_text() == "one, better, with my new answers"

    # the same version with other lessons (a rebuilt wheel): the changed copy is kept too
    (mine / "01_a (new in 1.2).ipynb").write_text("one, best, mine")
    v4 = lessons(tmp_path / "v4", {"01_a.ipynb": "one, rebuilt"})
    assert launch.install(mine, v4).beside == [("01_a.ipynb", "01_a (new in 1.2, 2).ipynb")]
    assert (mine / "01_a (new in 1.2).ipynb").read_text() == "one, best, mine"
    assert (mine / "01_a (new in 1.2, 2).ipynb").read_text() == "one, rebuilt"
    # an untouched beside copy is brought up to date in place, no new name
    v5 = lessons(tmp_path / "v5", {"01_a.ipynb": "one, rebuilt again"})
    assert launch.install(mine, v5).beside == [("01_a.ipynb", "01_a (new in 1.2, 2).ipynb")]
    assert (mine / "01_a (new in 1.2, 2).ipynb").read_text() == "one, rebuilt again"
    assert launch.install(mine, v5).lines() == []


def test_a_file_of_the_learners_at_the_beside_name_is_never_overwritten(tmp_path, monkeypatch):
    monkeypatch.setattr(launch, "version", lambda: "2.0")
    mine = lessons(tmp_path / "mine", {"01_a.ipynb": "mine", "01_a (new in 2.0).ipynb": "mine too"})
    done = launch.install(mine, lessons(tmp_path / "v", {"01_a.ipynb": "shipped"}))
    assert done.beside == [("01_a.ipynb", "01_a (new in 2.0, 2).ipynb")]
    assert (mine / "01_a (new in 2.0).ipynb").read_text() == "mine too"


@pytest.mark.parametrize("cut", ["fsync", "replace"])
def test_a_ctrl_c_while_copying_leaves_no_cut_lesson(tmp_path, monkeypatch, cut):
    """attack41 F (lab_ctrl_c_copy): a lesson written in place and cut half way counted as
    the learner's own at the next launch. Each is written whole (temp, fsync, rename)."""
    source = lessons(tmp_path / "v1", {f"0{i}_l.ipynb": f"lesson {i} " * 999 for i in range(1, 5)})
    mine = tmp_path / "mine"
    real, calls = getattr(launch.os, cut), []

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(launch.os, cut, interrupted)
    with pytest.raises(KeyboardInterrupt):
        launch.install(mine, source)
    monkeypatch.setattr(launch.os, cut, real)
    assert sorted(p.name for p in mine.iterdir()) == ["01_l.ipynb", "02_l.ipynb"]  # no temp
    done = launch.install(mine, source)
    assert done.new == ["03_l.ipynb", "04_l.ipynb"] and not done.beside
    for i in range(1, 5):
        assert (mine / f"0{i}_l.ipynb").read_text() == (source / f"0{i}_l.ipynb").read_text()
    assert launch.install(mine, source).lines() == []
    umask = os.umask(0o022)
    os.umask(umask)
    assert {stat.S_IMODE(p.stat().st_mode) for p in mine.iterdir()} == {0o666 & ~umask}


def test_a_beside_copy_written_before_a_ctrl_c_is_said_at_the_next_launch(tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    launch.install(mine, lessons(tmp_path / "v1", {"01_a.ipynb": "one"}))
    (mine / "01_a.ipynb").write_text("mine")
    v2 = lessons(tmp_path / "v2", {"01_a.ipynb": "two"})
    monkeypatch.setattr(launch, "version", lambda: "3.0")
    writes = []
    real = launch.write_whole

    def cut_before_manifest(path, data):
        writes.append(path.name)
        if path.name == launch.MANIFEST:
            raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(launch, "write_whole", cut_before_manifest)
    with pytest.raises(KeyboardInterrupt):
        launch.install(mine, v2)
    monkeypatch.setattr(launch, "write_whole", real)
    assert launch.install(mine, v2).beside == [("01_a.ipynb", "01_a (new in 3.0).ipynb")]
    assert launch.install(mine, v2).lines() == []


@pytest.mark.parametrize(
    "text",
    ["[]", '{"files": "x"}', "null", '"x"', '{"files": {"01_a.ipynb": 3}}', '{"files": []}',
     '{"beside": []}', '{"beside": {"01_a (new in 0).ipynb": 1}}', '{"beside": {"x": {}}}'],
)  # fmt: skip
def test_a_manifest_of_another_shape_counts_as_none(tmp_path, text):
    """attack41 F (lab_manifest.sh): JSON of another shape was a traceback; it is treated
    as damaged JSON is, as no manifest at all (a folder made by hand), with nothing said."""
    mine = lessons(tmp_path / "mine", {"01_a.ipynb": "one", "02_b.ipynb": "mine"})
    (mine / launch.MANIFEST).write_text(text)
    done = launch.install(mine, lessons(tmp_path / "v", {"01_a.ipynb": "one", "02_b.ipynb": "b"}))
    assert (mine / "02_b.ipynb").read_text() == "mine" and [y for y, _ in done.beside] == [
        "02_b.ipynb"
    ]
    assert json.loads((mine / launch.MANIFEST).read_text())["files"] == {
        "01_a.ipynb": launch._hash(mine / "01_a.ipynb")
    }


class Started(Exception):
    """JupyterLab would take the process over here (``os.execv``)."""


def test_the_command_on_a_manifest_of_another_shape_opens_the_lab(tmp_path, monkeypatch, capsys):
    pytest.importorskip("jupyterlab")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(launch.os, "name", "posix")

    def execv(path, command):
        raise Started(command)

    monkeypatch.setattr(launch.os, "execv", execv)
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / launch.MANIFEST).write_text("[]")
    import socket

    with socket.socket() as probe:  # a port free now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(Started):
        cli.main(["lab", str(tmp_path / "class"), "--port", str(port)])
    captured = capsys.readouterr()
    assert captured.err == "" and "copied" in captured.out


def test_a_killed_writers_temp_file_is_swept_by_the_next_whole_write(tmp_path):
    """fixlab's note: a writer killed (SIGKILL) between its temp file and the rename left a
    hidden ``.NAME.xxxx.tmp`` for good. The next whole write of that file removes those old
    enough to be a dead writer's; a live writer's (fresh) stays."""
    import os
    import time

    from rollback_lessons.lab.whole import STALE, write_whole

    target = tmp_path / "progress [1].json"  # (a name glob would read as a pattern)
    old, fresh = tmp_path / f".{target.name}.dead.tmp", tmp_path / f".{target.name}.live.tmp"
    other = tmp_path / ".other.json.dead.tmp"
    for made in (old, fresh, other):
        made.write_bytes(b"cut")
    then = time.time() - STALE - 60
    os.utime(old, (then, then))
    os.utime(other, (then, then))
    write_whole(target, b"{}")
    assert target.read_bytes() == b"{}"
    assert not old.exists() and fresh.exists() and other.exists()
