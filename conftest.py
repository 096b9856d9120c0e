"""For every pytest run in this repository (the tests and the lessons under nbval): empty
Jupyter data directories, so that the exercises' progress file of whoever runs the tests
is neither read nor written. The lessons (nbval's kernels inherit the environment) share
one that no test writes to, so a lesson's progress cell shows the same output on every
machine and in any order; each test gets its own, so a check it passes is remembered only
there.

Temporary files in memory: the run's temporary directory (pytest's tmp_path, tempfile's,
for the workers, kernels and servers it starts too) is a new one on /dev/shm (a RAM file
system) when the machine has one with room, removed when the run ends. The journals' and
DBOS's SQLite commits wait for the disk (synchronous=FULL: an fsync or two each): on a
shared disk that was most of the crash, journal, fault-harness and DBOS tests' wall time
(tests/test_fault_harness.py 43 s -> 9 s, test_dbos.py 106 s -> 60 s). No test kills the
machine, only processes, which a commit survives in memory as on a disk. A TMPDIR of one's
own is kept as it is."""

import contextlib
import gc
import json
import os
import random
import resource
import shutil
import tempfile
import time
import zlib

import pytest

RAM = "/dev/shm"
RAM_NEEDED = 1 << 30  # bytes free (a run writes about 100 MB; Docker's default is 64 MB)


def _in_memory() -> str | None:
    """A new directory on /dev/shm for this run's temporary files, or None (TMPDIR set by
    whoever runs the tests, no /dev/shm, or too little room on it)."""
    if "TMPDIR" in os.environ or not os.access(RAM, os.W_OK):
        return None
    try:
        free = os.statvfs(RAM)
    except OSError:
        return None
    if free.f_bavail * free.f_frsize < RAM_NEEDED:
        return None
    return tempfile.mkdtemp(prefix="rollback-lessons-tests-", dir=RAM)


def pytest_configure(config):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the workers inherit the controller's
        if getattr(config.option, "numprocesses", None):  # xdist's controller: workers to come
            _compile_ahead(config)
        # which part of the costliest sweeps make test runs this time (tests/conftest.py's
        # a_part): a new one each run unless TEST_SLICE is given (to repeat a run's)
        os.environ.setdefault("TEST_SLICE", str(random.SystemRandom().randrange(1 << 16)))
        _whole("TEST_SLICE", "0", "which part: any")
        _parts()
        ram = _in_memory()
        if ram is not None:
            config._rollback_lessons_ram = ram
            os.environ["TMPDIR"] = tempfile.tempdir = ram
    config._rollback_lessons_data = tempfile.TemporaryDirectory(
        prefix="rollback-lessons-jupyter-data-"
    )
    os.environ["JUPYTER_DATA_DIR"] = config._rollback_lessons_data.name
    if getattr(config.option, "nbval", False):
        _nbval_kernels_on_unix_sockets(config)


def _nbval_kernels_on_unix_sockets(config) -> None:
    """nbval's kernels talk over Unix sockets (zmq's ipc transport), not TCP ports. Over TCP
    jupyter_client picks five free ports, lets them go and the kernel binds them a moment
    later; with four workers starting servers and kernels beside it, another process took one
    in between now and then, and the kernel died before it answered (a lesson's every cell an
    error: ci156, s74; treebeardtech/nbmake#129). A socket file of its own cannot be taken."""
    import itertools

    try:
        import nbval.kernel
        from jupyter_client import KernelManager
    except ImportError:
        return
    base = tempfile.mkdtemp(prefix="k")  # (short: a socket's path has at most 107 bytes)
    config._rollback_lessons_sockets = base
    made = itertools.count()

    def manager(**kwargs):
        where = os.path.join(base, f"{os.getpid()}-{next(made)}")
        return KernelManager(transport="ipc", ip=where, **kwargs)

    nbval.kernel.KernelManager = manager


def _compile_ahead(config) -> None:
    """On a fresh clone every xdist worker compiled the package and rewrote and compiled
    every test module itself: they start at once and none finds another's cache (4 workers
    collecting: 25 CPU s cold, 16 warm). The controller writes those caches first, once,
    before it starts the workers: the package's and the helpers' bytecode (compileall) and
    the test modules' rewritten asserts with pytest's own rewriter, where the workers' import
    looks for them (__pycache__/*-pytest-*.pyc, keyed by the source's hash). Caches already
    there are kept; with PYTHONDONTWRITEBYTECODE, or a pytest without that rewriter, nothing
    is written and the workers compile as before."""
    import compileall
    import fnmatch
    import py_compile
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    if sys.dont_write_bytecode:
        return
    root = Path(__file__).resolve().parent
    compileall.compile_dir(root / "rollback_lessons", quiet=1)
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _read_pyc, _rewrite_test, _write_pyc
    except ImportError:
        return
    patterns = config.getini("python_files")
    quiet = SimpleNamespace(trace=lambda message: None)
    for source in sorted((root / "tests").rglob("*.py")):
        try:
            if not any(fnmatch.fnmatch(source.name, p) for p in patterns):
                py_compile.compile(str(source), doraise=True)  # a helper: imported as is
                continue
            pyc = source.parent / "__pycache__" / f"{source.stem}{PYC_TAIL}"
            if _read_pyc(source, pyc) is None:  # none, or of an older source
                source_hash, code = _rewrite_test(source, config)
                _write_pyc(quiet, code, source_hash, pyc)
        except Exception:  # a module that does not compile: its own import will say so
            continue


def pytest_report_header(config):
    parts = _parts()
    if parts == 1:
        return f"TEST_SLICE={os.environ['TEST_SLICE']} (make test's part of the costliest sweeps)"
    return (
        f"TEST_SLICE={os.environ['TEST_SLICE']} TEST_PARTS={parts}: a part of each test file "
        f"(1 test in {parts}, at least one) and of the costliest sweeps, chosen by TEST_SLICE; "
        "every lesson (make test PARTS=1: every test)"
    )


# -- make test: a part of each file, a different part each run (issue 26) ------------------
# Two cores cannot run the whole suite (about 700 CPU s) in make test's three minutes. With
# TEST_PARTS=N (make test's PARTS; 1, every test, when make test is given TESTS or
# PARTS=1; make soak runs them all), each test file runs one test in N: every Nth in
# its file's order, from an offset TEST_SLICE and the file's name choose, at least one of
# every file. Every kind of check runs each time (every file: the engines, the journal,
# the servers, the browser, the crash trials), a different part of each file each run, and
# every lesson under strict nbval or in the browser (a lesson's cells share a kernel: a
# notebook is never split). TEST_SLICE (printed in the header) repeats a run's part.
def _parts() -> int:
    if os.environ.get("SOAK", "") not in ("", "0"):
        return 1
    parts = _whole("TEST_PARTS", "1", "1: every test")
    if parts < 1:
        raise pytest.UsageError(f"TEST_PARTS={parts}: 1 or more (1: every test)")
    return parts


def _whole(name: str, default: str, meaning: str) -> int:
    """The whole number in the environment's ``name``, or pytest's one-line usage error."""
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        said = f"{name}={os.environ[name]!r}"
        raise pytest.UsageError(f"{said}: a whole number ({meaning})") from None


def part_of_each_file(nodeids: list[str], parts: int, slice_: int) -> list[bool]:
    """Which of ``nodeids`` (in collection order) make test runs: in each test file, one in
    ``parts`` (every ``parts``-th from an offset ``slice_`` and the file's name choose, at
    least one); every notebook cell."""
    by_file: dict[str, list[int]] = {}
    for i, nodeid in enumerate(nodeids):
        path = nodeid.split("::", 1)[0]
        if not path.endswith(".ipynb"):
            by_file.setdefault(path, []).append(i)
    kept = [True] * len(nodeids)
    for path, tests in by_file.items():
        offset = zlib.crc32(f"{slice_} {path}".encode()) % parts  # (not a_part's offsets)
        chosen = set(tests[(parts - offset) % parts :: parts] or [tests[offset % len(tests)]])
        for i in tests:
            kept[i] = i in chosen
    return kept


# The part is chosen first, before -k, -m, --deselect and --lf narrow the run: a part,
# then narrowed, is the same part (TEST_SLICE=N with -k runs those of its tests -k names).
@pytest.hookimpl(specname="pytest_collection_modifyitems", tryfirst=True)
def pytest_collection_modifyitems_a_part_first(config, items):
    _a_part_of_each_file(config, items)


def _named_tests(config) -> set[str]:
    """The files (as node ids begin) of the node ids pytest was given (``file::test``)."""
    from pathlib import Path

    named = set()
    for arg in config.args:
        if "::" in arg:
            path = Path(config.invocation_params.dir, arg.split("::", 1)[0]).resolve()
            with contextlib.suppress(ValueError):
                named.add(path.relative_to(config.rootpath).as_posix())
    return named


def _a_part_of_each_file(config, items) -> None:
    parts = _parts()
    if parts == 1:
        return
    slice_ = _whole("TEST_SLICE", "0", "which part: any")
    named = _named_tests(config)  # (what a node id names is run whole: attack147 F4)
    kept = part_of_each_file([item.nodeid for item in items], parts, slice_)
    kept = [
        keep or item.nodeid.split("::", 1)[0] in named
        for item, keep in zip(items, kept, strict=True)
    ]
    left = [item for item, keep in zip(items, kept, strict=True) if not keep]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item, keep in zip(items, kept, strict=True) if keep]


def pytest_unconfigure(config):
    data = getattr(config, "_rollback_lessons_data", None)
    if data is not None:
        data.cleanup()
    sockets = getattr(config, "_rollback_lessons_sockets", None)
    if sockets is not None:
        shutil.rmtree(sockets, ignore_errors=True)
    ram = getattr(config, "_rollback_lessons_ram", None)
    if ram is not None:
        shutil.rmtree(ram, ignore_errors=True)


@pytest.fixture(autouse=True)
def _own_jupyter_data_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path_factory.mktemp("jupyter-data")))


# -- a lesson run once, not twice --------------------------------------------------------------
# The browser tests run each lesson with a panel (Run All in JupyterLab) and check its outputs
# by strict nbval's own rules (tests/nbval_rules.py; such a test is marked
# outputs_checked_as_nbval(path)). Where such a test is selected, nbval's own run of that
# lesson (a kernel of its own, the same cells again: 1.3-4.3 CPU s a lesson) is deselected;
# anywhere else (the browser tests deselected, -m "not browser", or not collected) nbval runs
# it as ever. make soak (SOAK=1) runs both.
@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect have chosen
def pytest_collection_modifyitems(config, items):
    if os.environ.get("SOAK", "") not in ("", "0"):
        return
    checked = {
        mark.args[0] for item in items for mark in item.iter_markers("outputs_checked_as_nbval")
    }
    if not checked:
        return
    root = config.rootpath
    run_twice = [
        item for item in items
        if type(item).__name__ == "IPyNbCell"
        and item.path.relative_to(root).as_posix() in checked
    ]  # fmt: skip
    if run_twice:
        dropped = set(map(id, run_twice))
        items[:] = [item for item in items if id(item) not in dropped]
        config.hook.pytest_deselected(items=run_twice)


# -- make test on every core (pytest-xdist: -n auto --dist loadfile) -------------------------
# Each test is a unit of work of its own, shared out between the workers, except where a
# file must stay on one worker: a notebook (its cells share one kernel) and the modules in
# TOGETHER, whose module-scoped fixtures start a server (Temporal, moto, the mail server,
# DBOS, a built wheel, JupyterLab and Chromium) once for the module. The browser tests'
# Playwright (sync API) keeps an event loop running in the worker's main thread while it is
# open, so it must close with its module: asyncio.run fails beside it. xdist's own way to
# say this (--dist loadgroup, xdist_group marks) groups nothing under pytest 9.2
# (pytest-dev/pytest-xdist#1386): this scheduler says it instead. A new module with a
# module-scoped server belongs in TOGETHER.
TOGETHER = (
    "tests/test_bpmn.py",
    "tests/test_browser.py",
    "tests/test_conformance.py",
    "tests/test_dbos.py",
    "tests/test_packaging.py",
    "tests/test_pivot_rule.py",
    "tests/test_services.py",
    "tests/test_stepfunctions.py",
    "tests/test_temporal.py",
    "tests/test_temporal_booking.py",
    "tests/test_temporal_edges.py",
    "tests/test_temporal_graph.py",
    "tests/test_temporal_limits.py",
    "tests/test_viz.py",
)


# The browser tests are the longest unit (a JupyterLab and a Chromium, every lesson run in
# them): in two halves, on two workers at once, each with its own JupyterLab and Chromium
# (a few CPU seconds more, half the wall time). Each half still runs as one unit, so that a
# worker's Playwright closes with its half. Each half's tests' wall times, summed from one
# run of the whole file in one process (s39, load 6-7; a JupyterLab's start counted in both):
# about 117 s and 126 s.
BROWSER = "tests/test_browser.py"
BROWSER_FIRST_HALF = (
    *(f"[0{n}_" for n in range(8)),  # lessons 00-07
    "::test_a_panel_run_too_early_says_which_cell_to_run_first",
    "::test_a_panel_whose_kernel_restarted_says_so",
    "::test_a_panel_cell_run_again_and_again_while_playing",
    "::test_temporals_web_ui_shows_a_compensated_workflow",  # (7 s; s40: half 2 was longer)
)


# A test of another file that uses a module's session-scoped server goes with that module,
# so that one worker starts the server for both (tests/conftest.py's
# temporal_with_a_low_history_limit).
WITH_MODULE = {
    "tests/test_attacks7.py::test_on_a_server_with_a_lowered_history_limit_the_count_holds"
    "_and_refuses": "tests/test_temporal_limits.py",
}


def unit_of_work(nodeid: str) -> str:
    if nodeid in WITH_MODULE:
        return WITH_MODULE[nodeid]
    path = nodeid.split("::", 1)[0]
    if path == BROWSER:
        return f"{path} (half {1 if any(m in nodeid for m in BROWSER_FIRST_HALF) else 2})"
    return path if path.endswith(".ipynb") or path in TOGETHER else nodeid


# The longest units first (longest processing time first: what starts last should be short).
# xdist's own order (the units with the most tests first) started the browser halves (10
# tests each, 2-3 min of wall time) and the Temporal modules (6-24 tests, 30-36 s each,
# mostly waiting on the server) after a dozen shorter units, and they ran on alone at the
# end while the other workers had nothing left. Wall time of each unit in one process, most
# of it waiting (measured at load 5-7, s37): these files' tests and notebooks go first, in
# this order (a file's single tests too: test_attacks7's history-limit test, 11 s); the
# rest keeps xdist's order.
SLOWEST_FIRST = (
    f"{BROWSER} (half 1)",  # ~130-170 s
    f"{BROWSER} (half 2)",
    # the wheel (conftest's wheel_venv, 10-25 s) built here, early, on another worker: from
    # the end of xdist's order it was built by the browser's second half, its last test
    # waiting for it (24.6 s of setup in a make test at load 7-12, s40)
    "tests/test_packaging.py",
    "tests/test_temporal_booking.py",  # 36 s
    "tests/test_conformance.py",  # 35 s
    "tests/test_temporal.py",  # 32 s
    "tests/test_temporal_edges.py",  # 29 s
    "tests/test_temporal_graph.py",  # 29 s
    "tests/test_stepfunctions.py",  # 26 s
    "tests/test_dbos.py",  # 20 s
    "tests/test_temporal_limits.py",  # 16 s with test_attacks7's history-limit test (s38)
    "notebooks/08_sagas_on_temporal.ipynb",  # 14 s
    "notebooks/07_crash_recovery.ipynb",  # 11 s
    "tests/test_attacks7.py",  # about 10 s without it, one by one
    "notebooks/09_step_functions_and_bpmn.ipynb",  # 10 s
)


def _rank(unit: str) -> int:
    path = unit if unit.startswith(BROWSER) else unit.split("::", 1)[0]
    return SLOWEST_FIRST.index(path) if path in SLOWEST_FIRST else len(SLOWEST_FIRST)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FilesThatMustStayTogether(LoadScopeScheduling):
        _slowest_first = False

        def _split_scope(self, nodeid: str) -> str:
            return unit_of_work(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self._slowest_first:  # once, before the first unit is handed out
                self._slowest_first = True
                units = sorted(self.workqueue.items(), key=lambda unit: _rank(unit[0]))
                self.workqueue.clear()
                self.workqueue.update(units)  # (a stable sort: xdist's order otherwise)
            super()._assign_work_unit(node)

    return FilesThatMustStayTogether(config, log)


# A worker's tests niced once it has left the browser tests. The browser halves are the
# longest units (Lab, Chromium and a kernel each, mostly waiting on each other): when the
# other workers' pure-Python tests took both cores, a half's JupyterLab, kernel and Chromium
# waited behind them, and make test waited for the halves at its end. A worker that starts a
# unit other than a browser half lowers its own priority (and its servers' and kernels', which
# it starts afterwards) by NICER; the halves keep theirs. Only under xdist (make test's
# workers): a run in one process keeps its priority.
NICER = 5


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if not os.environ.get("PYTEST_XDIST_WORKER") or getattr(item.config, "_niced", False):
        return
    if not unit_of_work(item.nodeid).startswith(BROWSER):
        item.config._niced = True
        os.nice(NICER)


# -- where make test's CPU goes: each file's, printed at the end --------------------------
# The durations say which tests wait longest; on two cores what bounds make test is the CPU
# all of them use. Each test's CPU (user+sys: its process's, and its children's once they
# end: kernels, servers, browsers) is summed per file; under xdist each worker sends its
# sums to the controller, which prints the costliest files after the durations.
COSTLIEST = int(os.environ.get("CPU_FILES", "15"))  # (CPU_FILES=200: every file)


def _cpu_seconds() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _costs(config) -> dict[str, float]:
    if not hasattr(config, "_rollback_lessons_cpu"):
        config._rollback_lessons_cpu = {}
    return config._rollback_lessons_cpu


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    yield
    costs, path = _costs(item.config), item.nodeid.split("::", 1)[0]
    costs[path] = costs.get(path, 0.0) + _cpu_seconds() - start


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """What collection made (every module the tests import: matplotlib, Temporal's SDK,
    boto3, DBOS, Hypothesis; about 340,000 objects) is moved out of the cyclic collector's
    reach (``gc.freeze``): a full collection then walks only what the tests made since. The
    tests and the runners' closes call ``gc.collect()`` to finalize what a run left at once
    (a generator that dropped a Ctrl-C, an SDK client): on that heap each took about 0.1 CPU
    s, one test's sweep hundreds of them (issue 26). Those objects live until the process
    ends anyway; reference counting still frees them, and nothing a test makes is frozen."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: to the controller
        session.config.workeroutput["cpu_by_file"] = json.dumps(_costs(session.config))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    costs = _costs(node.config)
    for path, seconds in json.loads(node.workeroutput.get("cpu_by_file", "{}")).items():
        costs[path] = costs.get(path, 0.0) + seconds


def pytest_terminal_summary(terminalreporter, config):
    costs = _costs(config)
    if not costs:
        return
    terminalreporter.section(f"CPU by file (the {COSTLIEST} costliest, user+sys, children too)")
    for path, seconds in sorted(costs.items(), key=lambda c: -c[1])[:COSTLIEST]:
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}")
    terminalreporter.write_line(f"{sum(costs.values()):7.1f} s  in all ({len(costs)} files)")
