"""``rollback-lessons lab [DIR]``: the lessons that ship inside the package, copied into a
folder of the learner's own and opened in JupyterLab (on 127.0.0.1, as ``make lab`` does).

A lesson is copied on first use and never overwritten once the learner has changed it
(running it counts: its outputs change): a newer lesson then goes beside it, and the
command says so. A copy the learner never touched is simply brought up to date. What was
copied is remembered in ``DIR/.rollback-lessons.json`` (each lesson's hash as shipped).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

MANIFEST = ".rollback-lessons.json"
LESSONS = "[0-9][0-9]_*.ipynb"
# No "Get Jupyter news?" pop-up over a lesson, no update check. The command passes them
# itself (``lab_settings``), so they hold in any venv: one built without `make lab` (which
# writes them into the venv too), or the wheel's (which ships them as
# share/jupyter/lab/settings/overrides.d/rollback-lessons.json, read only where JupyterLab's
# own files are in the same prefix).
# And the panels' state saved with a lesson (JupyterLab autosaves every two minutes): a
# lesson reopened once its kernel has gone shows each panel as it was, marked "this panel
# lost its kernel: run the cell again", not "Error displaying widget: model not found"
# (and that error in the browser's console).
# And Run All chosen while a lesson's kernel is still starting (the first seconds after it
# opens, longer on a busy machine) refused with a notice that says so: by default JupyterLab
# 4 "runs" each code cell then by clearing its outputs and count (no kernel yet: nothing is
# sent), and its autosave writes the lesson back without them (newuser11, newuser12; s39
# runall-report).
LAB_SETTINGS: dict[str, dict[str, object]] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
    "@jupyterlab/notebook-extension:tracker": {"enableKernelInitNotification": True},
}


class LabError(Exception):
    """Something the learner can fix: printed as one line, exit status 2."""


def shipped_lessons() -> Path:
    """Where the lessons are: inside the installed package, or (an editable install, a
    checkout) the repository's notebooks/ beside it."""
    packaged = Path(str(resources.files("rollback_lessons"))) / "lessons"
    if any(packaged.glob(LESSONS)):
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "notebooks"
    if any(checkout.glob(LESSONS)):
        return checkout
    raise LabError(
        "the lessons are not installed with this package; reinstall it: "
        "pip install --force-reinstall 'rollback-lessons[lab]'"
    )


def version() -> str:
    try:
        return metadata.version("rollback-lessons")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        return "0"


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Copied:
    """What ``install`` did, lesson by lesson (``lines()`` says it to the learner)."""

    folder: Path
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    beside: list[tuple[str, str]] = field(default_factory=list)  # (yours, the newer one)
    kept: list[str] = field(default_factory=list)  # yours, changed; nothing newer

    def lines(self) -> list[str]:
        out = []
        if self.new:
            n = len(self.new)
            out.append(f"copied {n} lesson{'s' if n != 1 else ''} into {self.folder}")
        for name in self.updated:
            out.append(f"updated {name} (you had not changed it)")
        for yours, newer in self.beside:
            out.append(f"kept your {yours}; the newer lesson is beside it: {newer}")
        return out


def install(folder: Path, source: Path | None = None) -> Copied:
    """Copy the lessons into ``folder``, never overwriting one the learner changed."""
    source = source or shipped_lessons()
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{folder} is a file, not a folder for the lessons")
    done = Copied(folder)
    if source.resolve() == folder:
        return done  # the lessons' own folder (a checkout): nothing to copy
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    except ValueError:
        manifest = {}
    shipped_hashes = dict(manifest.get("files", {}))
    tag = version()
    for lesson in sorted(source.glob(LESSONS)):
        target = folder / lesson.name
        new_hash = _hash(lesson)
        if not target.exists():
            target.write_bytes(lesson.read_bytes())
            done.new.append(lesson.name)
        else:
            mine, came_from = _hash(target), shipped_hashes.get(lesson.name)
            if mine == new_hash:
                pass
            elif came_from == mine:  # as shipped before, untouched: bring it up to date
                target.write_bytes(lesson.read_bytes())
                done.updated.append(lesson.name)
            elif came_from == new_hash:  # the learner changed it; nothing newer shipped
                done.kept.append(lesson.name)
                continue
            else:  # the learner's own copy, and a newer lesson: it goes beside it
                newer = folder / f"{lesson.stem} (new in {tag}){lesson.suffix}"
                if not newer.exists() or _hash(newer) != new_hash:
                    newer.write_bytes(lesson.read_bytes())
                    done.beside.append((lesson.name, newer.name))
                else:
                    done.kept.append(lesson.name)
                continue  # keep the hash of what the learner's copy came from
        shipped_hashes[lesson.name] = new_hash
    manifest_path.write_text(json.dumps({"version": tag, "files": shipped_hashes}, indent=1))
    return done


# How JupyterLab is started for the lessons, wherever that is: `rollback-lessons lab`,
# `make lab` (which runs that command), the browser tests and benchmarks/browser.py (which
# add only their token and temp dirs), so a test measures what a learner gets. The kernel's
# websocket without Nagle's algorithm (kernel_ws.py): a click reaches the screen about 45 ms
# sooner. A name, not an import: this module loads without JupyterLab installed.
KERNEL_CONNECTION = "rollback_lessons.lab.kernel_ws.NoDelayConnection"
SERVER_FLAGS = (
    "--ServerApp.ip=127.0.0.1",
    "--ServerApp.port_retries=0",
    "--no-browser",
    "--LabApp.news_url=None",
    # a class installs nothing by accident: the extension manager lists, never installs
    # (JupyterLab's default is "pypi": a search box and Install buttons for PyPI packages)
    "--LabApp.extension_manager=readonly",
    f"--ServerApp.kernel_websocket_connection_class={KERNEL_CONNECTION}",
)


def lab_settings(target: Path, source: Path | None = None) -> Path:
    """JupyterLab's app settings for the lessons, in ``target``: what JupyterLab would read
    anyway (``source``: its app settings folder, copied whole: page config, overrides.d),
    with ``LAB_SETTINGS`` on top of its overrides.json. Written afresh at each start."""
    if source is None:
        from jupyterlab.commands import get_app_dir

        source = Path(get_app_dir()) / "settings"
    if target.exists():
        shutil.rmtree(target)
    if source.is_dir():
        shutil.copytree(source, target)
    target.mkdir(parents=True, exist_ok=True)
    overrides_path = target / "overrides.json"
    try:
        overrides = json.loads(overrides_path.read_text()) if overrides_path.exists() else {}
    except ValueError:
        overrides = {}
    if not isinstance(overrides, dict):
        overrides = {}
    for plugin, values in LAB_SETTINGS.items():
        overrides[plugin] = {**overrides.get(plugin, {}), **values}
    overrides_path.write_text(json.dumps(overrides, indent=1))
    return target


def settings_home() -> Path:
    """Where the command keeps its JupyterLab settings: ``rollback_lessons/lab-settings`` in
    the Jupyter data directory (beside the learner's progress)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "rollback_lessons" / "lab-settings"


def lab_command(folder: Path, port: int, settings: Path | None = None) -> list[str]:
    """JupyterLab on 127.0.0.1 in ``folder``, as ``make lab`` starts it; ``settings``: the
    app settings folder ``lab_settings`` wrote (the news and update checks off)."""
    command = [
        sys.executable, "-m", "jupyterlab", *SERVER_FLAGS, f"--port={port}",
        f"--ServerApp.root_dir={folder}",
    ]  # fmt: skip
    if settings is not None:
        command.append(f"--LabApp.app_settings_dir={settings}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root without it (containers)
    return command


def port_free(port: int) -> None:
    """JupyterLab, told a port in use (and ``port_retries=0``), ends in a page of its own
    log (newuser14): asked first, the command says so in one line, and what to do."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LabError(
                f"port {port} on 127.0.0.1 is in use (another JupyterLab?): "
                "choose another with --port N (make lab PORT=N)"
            ) from None


def open_lab(
    folder: Path, port: int, *, say: Callable[[str], None] = print, run: bool = True
) -> int:
    """Copy the lessons into ``folder`` (see ``install``) and open JupyterLab there."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        raise LabError("JupyterLab is not installed: pip install 'rollback-lessons[lab]'") from None
    port_free(port)  # before anything is copied: nothing half-done
    done = install(folder)
    for line in done.lines():
        say(line)
    first = "00_start_here.ipynb"
    say(f"Open the http://127.0.0.1:{port}/lab?token=... link JupyterLab prints below, "
        f"then {first}.")  # fmt: skip
    command = lab_command(done.folder, port, lab_settings(settings_home()))
    if not run:
        return 0
    sys.stdout.flush()
    if os.name == "posix":
        os.execv(command[0], command)  # JupyterLab takes this process over (Ctrl+C stops it)
    import subprocess  # pragma: no cover - not POSIX

    return subprocess.call(command)  # pragma: no cover
