"""``rollback-lessons lab [DIR]``: the lessons that ship inside the package, copied into a
folder of the learner's own and opened in JupyterLab (on 127.0.0.1, as ``make lab`` does).

A lesson is copied on first use and never overwritten once the learner has changed it
(running it counts: its outputs change): a newer lesson then goes beside it, and the
command says so; that one is the learner's too once changed. A copy the learner never
touched is simply brought up to date. What was copied is remembered in
``DIR/.rollback-lessons.json`` (each lesson's hash as shipped, and each copy put beside one),
written after the lessons, each file written whole (a temp file renamed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

from .whole import write_whole

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


def _read_manifest(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """What was copied before: each lesson's hash as shipped, and each newer lesson put
    beside one (its lesson, its hash as shipped). A manifest that is not ours (damaged, or
    JSON of another shape) counts as none, as a folder made by hand does: nothing is said."""
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    files, beside = data.get("files"), data.get("beside")
    files = files if isinstance(files, dict) else {}
    beside = beside if isinstance(beside, dict) else {}
    return (
        {k: v for k, v in files.items() if isinstance(k, str) and isinstance(v, str)},
        {
            k: (v["lesson"], v["from"])
            for k, v in beside.items()
            if isinstance(v, dict) and isinstance(v.get("lesson"), str)
            and isinstance(v.get("from"), str)
        },
    )  # fmt: skip


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
    """Copy the lessons into ``folder``, never overwriting one the learner changed: the
    lesson itself, nor a newer one put beside it (attack41 F6: a beside copy once changed is
    the learner's too; an even newer lesson goes beside under a name of its own)."""
    source = source or shipped_lessons()
    folder = folder.expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise LabError(f"{folder} is a file, not a folder for the lessons")
    done = Copied(folder)
    if source.resolve() == folder:
        return done  # the lessons' own folder (a checkout): nothing to copy
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / MANIFEST
    shipped_hashes, beside = _read_manifest(manifest_path)
    beside = {name: got for name, got in beside.items() if (folder / name).exists()}
    tag = version()
    for lesson in sorted(source.glob(LESSONS)):
        target = folder / lesson.name
        new_hash = _hash(lesson)
        if not target.exists():
            write_whole(target, lesson.read_bytes())
            done.new.append(lesson.name)
        else:
            mine, came_from = _hash(target), shipped_hashes.get(lesson.name)
            if mine == new_hash:
                pass
            elif came_from == mine:  # as shipped before, untouched: bring it up to date
                write_whole(target, lesson.read_bytes())
                done.updated.append(lesson.name)
            elif came_from == new_hash:  # the learner changed it; nothing newer shipped
                done.kept.append(lesson.name)
                continue
            else:  # the learner's own copy: keep it; the newest lesson goes beside it
                newer = _beside(folder, lesson, new_hash, tag, beside)
                if newer is None:
                    done.kept.append(lesson.name)
                else:
                    write_whole(folder / newer, lesson.read_bytes())
                    beside[newer] = (lesson.name, new_hash)
                    done.beside.append((lesson.name, newer))
                continue  # keep the hash of what the learner's copy came from
        shipped_hashes[lesson.name] = new_hash
    manifest = {
        "version": tag,
        "files": shipped_hashes,
        "beside": {name: {"lesson": of, "from": h} for name, (of, h) in sorted(beside.items())},
    }
    write_whole(manifest_path, json.dumps(manifest, indent=1).encode())  # after the lessons
    return done


def _beside(
    folder: Path, lesson: Path, new_hash: str, tag: str, beside: dict[str, tuple[str, str]]
) -> str | None:
    """Where the newest ``lesson`` goes beside the learner's changed copy, or None when the
    learner has it already (came from it, changed or not). A beside copy recorded and never
    changed may be brought up to date; any other file there is the learner's: a new name."""
    came = {name: h for name, (of, h) in beside.items() if of == lesson.name}
    if new_hash in came.values():
        return None
    first = f"{lesson.stem} (new in {tag}){lesson.suffix}"
    for n in range(1, 1000):
        name = first if n == 1 else f"{lesson.stem} (new in {tag}, {n}){lesson.suffix}"
        path = folder / name
        if not path.exists():
            return name
        now = _hash(path)
        if now == came.get(name) or (name not in beside and now == new_hash):
            return name  # untouched, or written and never recorded (a Ctrl-C): said now
    raise LabError(f"too many copies of {lesson.name} in {folder}: move some away")


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
    log (newuser14): asked first, the command says so in one line, and what to do. Asked
    as JupyterLab binds (``port_in_use``): a JupyterLab just stopped left its connections in
    TIME_WAIT, which a plain bind refuses for a minute and JupyterLab's does not."""
    from ..runners import port_in_use

    if port_in_use(port):
        raise LabError(
            f"port {port} on 127.0.0.1 is in use (another JupyterLab?): "
            "choose another with --port N (make lab PORT=N)"
        )


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


def lab_cli(args: argparse.Namespace) -> int:
    """``rollback-lessons lab``: the lessons copied to ``args.dir`` and JupyterLab opened on
    ``args.port``; what stops it is one line and exit 2."""
    if not 0 < args.port < 65536:
        print(f"rollback-lessons: --port {args.port} is not a port (1-65535)", file=sys.stderr)
        return 2
    try:
        return open_lab(Path(args.dir), args.port)
    except LabError as exc:
        print(f"rollback-lessons: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the folder cannot hold the lessons
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"rollback-lessons: cannot put the lessons in {args.dir}: "
              f"{exc.strerror or exc}{where}", file=sys.stderr)  # fmt: skip
        return 2
