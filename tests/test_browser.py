"""Every lesson in a real JupyterLab in a real Chromium, as a learner opens it.

strict nbval proves the kernel side; only a browser sees "Error displaying widget", a
missing widget extension or a figure that never appears. One JupyterLab serves the whole
session (127.0.0.1, a free port, a token), on copies of the lessons without outputs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest
from notebook_tools import clean

from rollback_lessons.runners import free_port

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 30_000
WIDGET_ERRORS = ("Error displaying widget", "model not found", "Failed to load model class")

pytestmark = pytest.mark.browser


def _chromium() -> str:
    path = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if path:
        return path
    message = (
        "no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
        "or set CHROMIUM=/path/to/chromium; .ci/run installs it in CI"
    )
    if os.environ.get("CI"):
        pytest.fail(message)  # in CI a missing browser is a failure, never a skip
    pytest.skip(message)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    process: subprocess.Popen = field(repr=False)

    def api(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _chromium()  # no browser, no point starting a server
    base = tmp_path_factory.mktemp("jupyterlab")
    root, settings = base / "notebooks", base / "app-settings"
    root.mkdir()
    settings.mkdir()
    for path in NOTEBOOKS:  # copies without outputs: stale outputs would pass checks early
        nb = clean(nbformat.read(path, as_version=4))
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, root / path.name)
    (settings / "overrides.json").write_text(
        json.dumps(
            {
                "@jupyterlab/apputils-extension:notification": {
                    "fetchNews": "false",
                    "checkForUpdates": False,
                    "doNotDisturbMode": True,
                },
                "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
            }
        )
    )
    env = dict(os.environ)
    for name in ("RUNTIME", "DATA", "CONFIG"):
        (base / name.lower()).mkdir()
        env[f"JUPYTER_{name}_DIR"] = str(base / name.lower())
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    port, token = free_port(), secrets.token_hex(16)
    log = (base / "lab.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.app_settings_dir={settings}",
            f"--LabApp.user_settings_dir={base / 'user-settings'}",
            f"--LabApp.workspaces_dir={base / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    lab = Lab(f"http://127.0.0.1:{port}", token, root, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited: {(base / 'lab.log').read_text()}")
            try:
                lab.api("GET", "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield lab
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser(lab_server: Lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, lab_server: Lab, request: pytest.FixtureRequest):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(f"pageerror: {e}"))
    page.on(
        "console",
        lambda m: m.type == "error" and page.errors.append(f"console: {m.text}"),
    )
    page.set_default_timeout(WAIT_MS)
    yield page
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = request.node.callspec.params.get("notebook", request.node.name)
    page.screenshot(path=str(SCREENSHOTS / f"{Path(str(name)).stem}.png"), full_page=True)
    context.close()
    for session in lab_server.api("GET", "/api/sessions"):  # type: ignore[union-attr]
        lab_server.api("DELETE", f"/api/sessions/{session['id']}")


def _ignorable(error: str) -> bool:
    # Chromium reports the favicon and the closed network; neither is a lesson's fault.
    return "favicon" in error or "ERR_INTERNET_DISCONNECTED" in error or "net::ERR_" in error


VIEWPORT = {"width": 1366, "height": 768}  # a classroom projector


def open_and_run(page, lab: Lab, name: str) -> None:
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
    page.evaluate("window.jupyterapp.commands.execute('filebrowser:activate')")
    page.wait_for_selector(".jp-FileBrowser", state="visible")  # as a learner has it: open
    idle = (
        "window.jupyterapp?.shell?.currentWidget?.sessionContext?.session?.kernel?.status"
        " === 'idle'"
    )
    page.wait_for_function(idle)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }"""
    )
    page.wait_for_function(idle)


def report(line: str) -> None:
    """A figure for the README: printed (-s) and kept next to the screenshots."""
    print(f"\n{line}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with (SCREENSHOTS / "timings.txt").open("a") as out:
        out.write(line + "\n")


def image_src(page) -> str:
    return page.locator(".rl-image").first.get_attribute("src") or ""


def wait_new_image(page, old: str) -> float:
    start = time.perf_counter()
    page.wait_for_function(
        "old => { const i = document.querySelector('.rl-image');"
        " return i && i.src && i.src !== old; }",
        arg=old,
    )
    return time.perf_counter() - start


def lesson_02(page) -> None:
    """Set write_file to fail: the frame jumps to the failure; Play walks through the run.
    Then undo forwards: the folder's undo becomes a dead letter and the folder stays."""
    panel = page.locator(".rollback-lab").first
    panel.scroll_into_view_if_needed()
    before = image_src(page)
    start = time.perf_counter()
    page.locator(".rl-action-write_file select").select_option(label="fail")
    wait_new_image(page, before)
    wait_text(page, ".rl-result", "write_file: injected failure")  # the run the click asked for
    click_to_frame = time.perf_counter() - start
    assert "write_file fail" in wait_text(page, ".rl-cue", "write_file fail")  # it re-ran
    play_until_images_change(page, 4)
    assert "rolled_back" in wait_text(page, ".rl-result", "write_file: injected failure")
    rows = [
        r.inner_text().split()
        for r in page.locator(".rl-result table").nth(1).locator("tbody tr").all()
    ]
    assert rows == [["folders", "[]", "[]"], ["files", "[]", "[]"], ["published", "False", "False"]]
    # the speed goal (reported, not asserted): fault click -> new picture, p95 <= 100 ms
    samples = [click_to_frame]
    for value in ["ok", "fail"] * 6:
        before = image_src(page)
        start = time.perf_counter()
        page.locator(".rl-action-write_file select").select_option(label=value)
        wait_new_image(page, before)
        samples.append(time.perf_counter() - start)
    samples.sort()
    p50, p95 = samples[len(samples) // 2], samples[int(0.95 * (len(samples) - 1))]
    report(
        f"lesson 02 panel in Chromium: fault click -> new picture on screen, "
        f"p50 {p50 * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms over {len(samples)} clicks "
        "(goal p95 <= 100 ms)"
    )
    choose(page, ".rl-action-write_file select", "publish: injected failure", option="ok")
    result = choose(page, ".rl-order select", "rollback_incomplete", option="forward")
    wait_text(page, ".rl-dead", "make_folder")
    assert "report" in result
    play_until_images_change(page)


def wait_text(page, selector: str, text: str) -> str:
    """Wait until the element shows ``text`` (each widget syncs on its own), return its text."""
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel)?.textContent.includes(text)",
        arg=[selector, text],
    )
    return page.locator(selector).first.inner_text()


def choose(page, selector: str, expect: str, option: str | None = None) -> str:
    """Click a control of the panel (or pick ``option`` in a dropdown); wait until the result
    says ``expect``; return it."""
    control = page.locator(f".rollback-lab {selector}").first
    if option is None:
        control.click()
    else:
        control.select_option(label=option)
    return wait_text(page, ".rl-result", expect)


def play_until_images_change(page, count: int = 3) -> None:
    seen = {image_src(page)}
    page.locator(".rl-play-button").first.click()
    deadline = time.monotonic() + 30
    while len(seen) < count and time.monotonic() < deadline:
        seen.add(image_src(page))
        page.wait_for_timeout(100)  # sampling the image while it plays, not waiting for it
    assert len(seen) >= count, "the frame image did not change while playing"


def fits_the_screen(page, index: int) -> None:
    """With the panel scrolled to the top: the picture, Play and the slider are all on screen
    at once; every button says what it does; the log's current row is inside its box."""
    panel = page.locator(".rollback-lab").nth(index)
    panel.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)  # let the scroll settle
    for part in (".rl-image", ".rl-play-button", ".rl-frame"):
        box = panel.locator(part).first.bounding_box()
        assert box is not None, part
        assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (part, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (part, box)
    for button in panel.locator("button").all():
        if not button.is_visible():
            continue  # the Play widget's own buttons: hidden, driven by the labelled Play
        said = (button.inner_text() or "").strip() or (button.get_attribute("title") or "")
        assert said.strip(), (
            f"a button with no label or tooltip: {button.evaluate('e => e.outerHTML')}"
        )
    log, now = panel.locator(".rl-log").first, panel.locator(".rl-log tr.now").first
    outer, inner = log.bounding_box(), now.bounding_box()
    assert outer and inner and outer["y"] <= inner["y"] <= outer["y"] + outer["height"] - 1


def fault_click_changes_the_frame(page, index: int) -> None:
    panel = page.locator(".rollback-lab").nth(index)
    image = panel.locator(".rl-image").first
    before = image.get_attribute("src")
    chooser = panel.locator(".rl-action select").first
    chooser.select_option(label="fail after effect" if chooser.input_value() == "fail" else "fail")
    page.wait_for_function(
        "([e, old]) => e.src && e.src !== old", arg=[image.element_handle(), before]
    )


def lesson_03(page) -> None:
    """Halt instead of continue: both undos are left for a person."""
    choose(page, ".rl-policy select", "halted", option="halt")
    wait_text(page, ".rl-log", "pending=2")
    play_until_images_change(page)


def lesson_04(page) -> None:
    """The room fails before the email: nothing irreversible happened, the rollback is whole."""
    choose(page, ".rl-action-charge_card select", "committed", option="ok")
    result = choose(page, ".rl-action-reserve_room select", "rolled_back", option="fail")
    assert "not run" in result  # the email never went out
    play_until_images_change(page)


def lesson_05(page) -> None:
    """Retry the refund that fails once: the log shows the retry, the run rolls back whole."""
    choose(page, ".rl-policy select", "rolled_back", option="retry")
    wait_text(page, ".rl-log", "then=retry")
    play_until_images_change(page)


def lesson_06(page) -> None:
    """After Run All the mail server still runs: every step ok commits, with the email.
    Then log every undo after its step: the timeout after the charge leaks 240."""
    choose(page, ".rl-action-charge_card select", "committed", option="ok")
    choose(page, ".rl-action-charge_card select", "rolled_back", option="fail after effect")
    result = choose(page, ".rl-register select", "rollback_incomplete", option="all after")
    assert "not undone" in result
    play_until_images_change(page)


def lesson_10(page) -> None:
    """The isolation panel: a countermeasure ends the anomaly; stepping back redraws."""
    lab = page.locator(".isolation-lab").first
    summary = lab.locator(".il-summary")
    assert "the anomaly happens in 1 of 3" in summary.inner_text()
    lab.locator(".il-countermeasure select").select_option(label="semantic lock")
    page.wait_for_function(
        "() => document.querySelector('.isolation-lab .il-summary').innerText"
        ".includes('happens in 0 of')"
    )
    image = lab.locator(".il-image")
    before = image.get_attribute("src")
    lab.locator(".il-back").click()
    page.wait_for_function(
        "old => document.querySelector('.isolation-lab .il-image').src !== old", arg=before
    )
    box = image.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366  # the picture fits the screen


def lesson_11(page) -> None:
    """The explorer's grid: a crossed-out cell opens its run in the panel underneath."""
    grid = page.locator(".explorer-grid").first
    cells = grid.locator(".eg-cell")
    assert cells.count() > 40
    crossed = grid.locator(".eg-cell", has_text="✗").first
    before = grid.locator(".rl-result").first.inner_text()
    crossed.click()
    page.wait_for_function(
        "() => document.querySelector('.explorer-grid .eg-note').innerText.includes('policy')"
    )
    note = grid.locator(".eg-note").inner_text()
    assert "phantom undo" in note or "not restored" in note, note
    after = grid.locator(".rl-result").first.inner_text()
    assert after != before or "rolled_back" in after


INTERACTIONS: dict[str, Callable] = {
    "02_why_reversed.ipynb": lesson_02,
    "03_when_an_undo_fails.ipynb": lesson_03,
    "04_irreversible_steps.ipynb": lesson_04,
    "05_logging_a_rollback.ipynb": lesson_05,
    "06_cross_tool_pipeline.ipynb": lesson_06,
    "10_sagas_are_not_isolated.ipynb": lesson_10,
    "11_testing_a_saga.ipynb": lesson_11,
}


@pytest.mark.parametrize("notebook", [p.name for p in NOTEBOOKS])
def test_lesson_renders_and_runs_in_jupyterlab(page, lab_server: Lab, notebook: str) -> None:
    open_and_run(page, lab_server, notebook)
    panel = page.locator(".jp-NotebookPanel").first
    text = panel.inner_text()
    for bad in WIDGET_ERRORS:
        assert bad not in text, f"{notebook}: {bad!r} in the page"
    assert (
        page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).count()
        == 0
    )
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0, errors.first.inner_text()
    cells = json.loads(Path(ROOT / "notebooks" / notebook).read_text())["cells"]
    # a RollbackLab panel of its own, or the one under an explorer's grid
    widgets = sum(
        "RollbackLab(" in "".join(c["source"]) or "ExplorerGrid(" in "".join(c["source"])
        for c in cells
    )
    assert page.locator(".rollback-lab").count() == widgets
    for i in range(page.locator(".rl-image").count()):
        page.locator(".rl-image").nth(i).wait_for(state="visible")
        assert image_src(page).startswith("blob:") or image_src(page).startswith("data:")
    for i in range(page.locator(".rollback-lab").count()):
        fits_the_screen(page, i)
    if notebook in INTERACTIONS:
        INTERACTIONS[notebook](page)
    for i in range(page.locator(".rollback-lab").count()):
        fault_click_changes_the_frame(page, i)
    real = [e for e in page.errors if not _ignorable(e)]
    assert real == [], real


def test_temporals_web_ui_shows_a_compensated_workflow(browser) -> None:
    """Temporal's own Web UI (the dev server's, on 127.0.0.1) shows the saga's history:
    the failed step and the undo activities that compensated it."""
    import asyncio
    import queue
    import threading

    from rollback_lessons.runners.temporal import TemporalRunner
    from rollback_lessons.worlds.demo import xyz_saga, xyz_state

    ready: queue.Queue = queue.Queue()
    done = threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with await TemporalRunner.start(ui=True) as runner:
                handle = await runner.start_saga(xyz_saga(), xyz_state(), inject={"step3": "fail"})
                ready.put((handle.ui_url, await handle.outcome()))
                while not done.is_set():
                    await asyncio.sleep(0.1)

        try:
            asyncio.run(main())
        except Exception as exc:  # tell the test, do not leave it waiting
            ready.put((None, exc))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        url, outcome = ready.get(timeout=120)
        assert url is not None, outcome
        assert url.startswith("http://127.0.0.1:") and str(outcome.status) == "rolled_back"
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        page.wait_for_selector("text=rollback_lessons.undo")  # an undo activity, compensating
        assert "rollback_lessons.action" in page.inner_text("body")
        page.get_by_text("Event History").first.click()
        page.wait_for_url("**/history")
        page.wait_for_selector("text=Activity Task Failed")  # the step that failed, in its history
        assert page.inner_text("body").count("Activity Task Scheduled") == 5  # 3 steps, 2 undos
        page.get_by_text("Activity Task Failed").first.scroll_into_view_if_needed()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "temporal-web-ui.png"), full_page=True)
        context.close()
    finally:
        done.set()
        thread.join(60)
