"""A learner's walk through the lessons' panels in JupyterLab: change -> new picture painted.

``python -m benchmarks.lesson_walk [NN ...] [--n N]`` (default: lessons 03, 06, 10, 11; 16
changes a panel) opens each lesson as a learner does (JupyterLab started as `make lab`
starts it, 1366x768, the file browser open), runs all its cells, then at a learner's pace
(``PACE_S`` apart) makes each panel's changes and times each one in the page, from the
change to the new picture decoded and its frame painted: every fault option of each
RollbackLab (and back), lesson 10's countermeasure, lesson 11's grid cells. It prints p50 /
p95 / max, the picture's size and the load average beside them: on 2 shared cores the times
follow the load. Minutes long, so not part of `make bench`. ``WT``: another checkout's
lessons and tests (with ``PYTHONPATH`` at its root, its package: a before/after pair).
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(os.environ.get("WT", Path(__file__).resolve().parent.parent))
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
PACE_S = float(os.environ.get("PACE", "0.8"))

# from the change (a select's option, or a click) to the new image decoded and painted
CHANGE_TO_PAINT = """async ([root, viewSel, imgSel, act]) => {
  const r = document.querySelectorAll(root)[act.panel];
  const view = r.querySelector(viewSel);
  const old = view.querySelector(imgSel)?.getAttribute('src');
  const t0 = performance.now();
  const changed = new Promise((resolve) => {
    const obs = new MutationObserver(() => {
      const img = view.querySelector(imgSel);
      if (img && img.getAttribute('src') !== old) { obs.disconnect(); resolve(img); }
    });
    obs.observe(view, { childList: true, subtree: true, attributes: true });
  });
  if (act.kind === 'select') {
    const box = r.querySelectorAll(act.sel)[act.k];
    box.selectedIndex = act.index;
    box.dispatchEvent(new Event('change', { bubbles: true }));
  } else {
    r.querySelectorAll(act.sel)[act.k].click();
  }
  const late = new Promise((res) => setTimeout(() => res(null), 10000));
  const img = await Promise.race([changed, late]);
  if (img === null) return null;  // the same picture (a fault the run never reaches)
  await img.decode();
  await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
  return [performance.now() - t0, (img.getAttribute('src') || '').length];
}"""


def said(name: str, found: list, load: float) -> str:
    if not found:
        return f"{name}: no change painted a new picture"
    ms = sorted(x[0] for x in found)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    size = statistics.median(x[1] for x in found) / 1024
    return (
        f"{name}: {len(ms)} changes, p50 {statistics.median(ms):.0f} / p95 {p95:.0f} / max "
        f"{ms[-1]:.0f} ms, picture {size:.0f} KiB as a data URL, load {load:.1f} -> "
        f"{os.getloadavg()[0]:.1f}"
    )


def change(page, root: str, view: str, img: str, act: dict) -> list | None:
    page.wait_for_timeout(PACE_S * 1000)  # (the learner looks)
    return page.evaluate(CHANGE_TO_PAINT, [root, view, img, act])


def walk(page, tb, lesson: str, n: int) -> None:
    for i in range(page.locator(".rollback-lab").count()):
        tb.check(page, "scrollTo", [".rollback-lab", i])
        load, found = os.getloadavg()[0], []
        for select, k, option in tb.check(page, "faultChanges", [i]):
            act = {"panel": i, "kind": "select", "sel": select, "k": k, "index": option}
            if len(found) < n and (took := change(page, ".rollback-lab", ".rl-view",
                                                  "img.rl-image", act)):  # fmt: skip
                found.append(took)
        print(said(f"{lesson} panel {i + 1}", found, load), flush=True)
    if page.locator(".isolation-lab").count():
        tb.check(page, "scrollTo", [".isolation-lab", 0])
        load, found = os.getloadavg()[0], []
        select = ".il-countermeasure select"
        options = page.evaluate(f"() => document.querySelector('.isolation-lab {select}').length")
        for k in range(n):
            act = {"panel": 0, "kind": "select", "sel": select, "k": 0, "index": (k + 1) % options}
            if took := change(page, ".isolation-lab", ".il-view", "img.il-image", act):
                found.append(took)
        print(said(f"{lesson} countermeasure", found, load), flush=True)
    if page.locator(".explorer-grid").count():
        tb.check(page, "scrollTo", [".explorer-grid", 0])
        load, found = os.getloadavg()[0], []
        cells = page.locator(".explorer-grid .eg-cell").count()
        for k in range(n):
            act = {"panel": 0, "kind": "click", "sel": ".eg-cell", "k": (k * 7) % cells}
            if took := change(page, ".explorer-grid", ".eg-shown", "img", act):
                found.append(took)
        print(said(f"{lesson} grid cell", found, load), flush=True)


def main(args: list[str]) -> None:
    import tempfile

    import nbformat
    import test_browser as tb
    from notebook_tools import clean
    from playwright.sync_api import sync_playwright

    from rollback_lessons.lab.launch import LAB_SETTINGS, lab_command
    from rollback_lessons.runners import free_port

    n = int(args[args.index("--n") + 1]) if "--n" in args else 16
    lessons = args[: args.index("--n")] if "--n" in args else args
    lessons = lessons or ["03", "06", "10", "11"]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root, settings = base / "notebooks", base / "app-settings"
        root.mkdir()
        settings.mkdir()
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            if path.name[:2] in lessons:  # without outputs: as a learner's first run
                nb = clean(nbformat.read(path, as_version=4))
                for cell in (c for c in nb.cells if c.cell_type == "code"):
                    cell.outputs, cell.execution_count = [], None
                nbformat.write(nb, root / path.name)
        (settings / "overrides.json").write_text(json.dumps(LAB_SETTINGS))
        port, token, log = free_port(), secrets.token_hex(16), base / "lab.log"
        lab = subprocess.Popen(
            [*lab_command(root, port), f"--IdentityProvider.token={token}",
             f"--LabApp.app_settings_dir={settings}", f"--LabApp.user_settings_dir={base / 'us'}",
             f"--LabApp.workspaces_dir={base / 'ws'}", "--LabApp.expose_app_in_browser=True"],
            env=tb.jupyter_env(base), stdout=log.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            tb.wait_for_lab(url, lab, log, token)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=tb._chromium(), args=tb.CHROMIUM_ARGS)
                page = browser.new_page(viewport=tb.VIEWPORT)
                page.set_default_timeout(120_000)
                for k, path in enumerate(sorted(root.glob("*.ipynb"))):
                    if k == 0:
                        tb.open_lesson(page, url, token, path.name)
                    else:  # the previous lesson's kernel shut down, as a learner closes it
                        page.evaluate(
                            "async () => { await window.jupyterapp.shell.currentWidget"
                            ".sessionContext.shutdown(); }"
                        )
                        tb.open_lesson(page, None, None, path.name)
                    tb.run_all(page)
                    time.sleep(2)  # (its panels' first pictures painted, drawn ahead)
                    walk(page, tb, path.name[:2], n)
                browser.close()
        finally:
            tb.stop(lab)


if __name__ == "__main__":
    main(sys.argv[1:])
