"""`sentinel serve`'s nights start in a spare process that is already warm.

Prefect's runner starts every scheduled flow run in a process of its own, made with
multiprocessing's "spawn" (``prefect.flow_engine.run_flow_in_subprocess``): a new interpreter
that imports Prefect and the flow's code, checks the rules' SQL (``rules.catalog``), and only
then begins the batch. At 1M persons that was 1.5-2 s of a night where nothing new arrived (3.5 s
in all, 1.6 s of it the batch).

:func:`warm_flow_runs` gives the runner a "spawn" context whose processes are spares: the next
night's process is spawned ahead of time, once no night is running (not beside one: its imports
would take the night's cores), as an interpreter that imports everything a night imports
(:mod:`flows.warm`) and then waits, reading multiprocessing's own pipe, for the flow run Prefect
will send it. When the runner starts a flow
run, the spare receives what a spawned process would have received (multiprocessing's
preparation data and the pickled process) and runs it exactly as a spawned one would: it is the
runner's child, watched, cancelled and killed as before. Unlike a fork, nothing is copied from a
process with threads, so the spare may import polars, pyarrow, pandera and scikit-learn (which
start threads on import) and read the rule catalogue.

A spare costs its memory while it waits (about 0.4 GB). A spare that died, or whose code changed
on disk since it was spawned (:func:`code_stamp`: it would run the old code under the new code's
fingerprints, rules/incremental.py), is not used: that night is spawned cold, as Prefect would,
and a new spare is made for the next. One whose warm-up failed says so and runs its night cold. A
waiting spare imports with serve's ``sys.path``, ignores Ctrl-C (it is serve's to handle), and is
ended at serve's exit (or leaves once its pipe closes, if serve was killed).
"""
from __future__ import annotations

import atexit
import io
import multiprocessing
import os
import select
import signal
import sys
import sysconfig
import threading
import time
from multiprocessing import context, popen_spawn_posix, reduction, resource_tracker, spawn, util
from pathlib import Path

# What a spare runs: the warm imports, then multiprocessing's own spawn_main on the pipe it was
# given, once that pipe has something to read (or has closed: then it exits quietly). Ctrl-C is
# ignored until the night arrives, then handled as in any spawned process.
_PROGRAM = """\
import os, select, signal, sys
inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.path[:] = {path!r}  # serve's: the night's modules from where serve would import them
try:
    import flows.warm
    flows.warm.ready_for_a_night()
except Exception as e:
    print(f"serve: a night's spare process could not warm up ({{type(e).__name__}}: {{e}}); it runs cold",
          file=sys.stderr, flush=True)
os.close({ready})
waiting = select.poll()
waiting.register({pipe}, select.POLLIN)
waiting.poll()
signal.signal(signal.SIGINT, inherited)  # as a process spawned by serve would have it
from multiprocessing.spawn import spawn_main
try:
    spawn_main(tracker_fd={tracker}, pipe_handle={pipe})
except EOFError:  # serve ended before this process had a night
    sys.exit(0)
except SystemExit as e:  # the night's outcome is decided: end without Python's teardown (0.85 s at 1M)
    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    try:
        from flows.cli import exit_now
    except Exception:
        raise e from None
    exit_now(code)
"""


class _Spare:
    """A spawned interpreter waiting for its night: its pid and the parent's ends of its pipes."""

    def __init__(self):
        self.tracker_fd = resource_tracker.getfd()
        self.tracker = _tracker()
        self.code = code_stamp()
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        self._ready, ready_w = os.pipe()  # closed by the spare once warm
        cmd = spawn.get_command_line(tracker_fd=self.tracker_fd, pipe_handle=child_r)
        cmd[cmd.index("-c") + 1] = _PROGRAM.format(tracker=self.tracker_fd, pipe=child_r, ready=ready_w,
                                                   path=list(sys.path))
        try:
            self.pid = util.spawnv_passfds(spawn.get_executable(), cmd, [self.tracker_fd, child_r, child_w, ready_w])
        except BaseException:
            util.close_fds(parent_r, parent_w, self._ready)
            raise
        finally:
            for fd in (child_r, child_w, ready_w):
                os.close(fd)
        self.sentinel, self.to_child = parent_r, parent_w
        self.reaped = False  # ended and waited for: its pid may be another process's by now

    def alive(self) -> bool:
        if self.reaped:
            return False
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pid = self.pid
        self.reaped = pid != 0
        return not self.reaped

    def usable(self, tracker_fd: int) -> bool:
        """Alive, with the resource tracker the night will be given, and the code on disk the code it
        imported (after an upgrade a spare would run the old code under the new one's fingerprints)."""
        return self.alive() and (self.tracker_fd, self.tracker) == (tracker_fd, _tracker()) \
            and self.code == code_stamp()

    def wait_ready(self, timeout: float) -> bool:
        """Whether it is warm within ``timeout`` seconds (its readiness pipe closes when it is warm,
        and when it dies: then it is not)."""
        ready = select.poll()
        ready.register(self._ready, select.POLLIN)
        return bool(ready.poll(timeout * 1000)) and self.alive()

    def close(self) -> None:
        """Its readiness pipe closed, once it was handed a night (the process itself goes on)."""
        util.close_fds(self._ready)

    def discard(self) -> None:
        """Ended (it was handed no night: nothing of a batch is in it) and reaped."""
        if not self.reaped:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        util.close_fds(self.sentinel, self.to_child, self._ready)
        if not self.reaped:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.reaped = True


def _tracker() -> int | None:
    return getattr(resource_tracker._resource_tracker, "_pid", None)


# the project's packages (pyproject.toml's, tests/test_serve.py checks)
PACKAGES = ("casework", "data_contracts", "flows", "models", "oversight", "rules", "synthetic")


def code_stamp() -> tuple:
    """What the code a process would import looks like on disk: the project's modules (their number
    and latest modification) and the environment's site-packages folder (a package installed,
    upgraded or removed changes its entries)."""
    root = Path(__file__).resolve().parents[1]
    stamps = []
    for pkg in PACKAGES:
        times = [f.stat().st_mtime_ns for f in (root / pkg).rglob("*.py")]
        stamps.append((pkg, len(times), max(times, default=0)))
    site = Path(sysconfig.get_paths()["purelib"])
    return tuple(stamps), site.stat().st_mtime_ns if site.is_dir() else None


_lock = threading.Lock()
_spare: _Spare | None = None
_closing = False
_running = 0  # nights started by this process and not yet ended


def _next_spare() -> None:
    """Spawn the spare of the next night, unless one is waiting, a night is running or serve is ending."""
    global _spare
    with _lock:
        if _spare is None and not _closing and not _running:
            _spare = _Spare()


def _close() -> None:
    """At serve's exit: no more spares, and the waiting one ended (it would leave once its pipe
    closed, but only after its imports)."""
    global _closing
    with _lock:
        _closing = True
    spare = _take_spare()
    if spare is not None:
        spare.discard()


def _after(sentinel: int) -> None:
    """Once the night's process has ended (its sentinel readable, a copy of it), the next spare: not
    while a night runs, whose cores its imports would take (nor while another night, started
    before this one ended, still runs: a run started from the UI beside the scheduled one)."""
    try:
        ended = select.poll()
        ended.register(sentinel, select.POLLIN)
        ended.poll()
    finally:
        os.close(sentinel)
        _ended()


def _ended() -> None:
    """A night of this process has ended (or did not start): the next spare, if none is running."""
    global _running
    with _lock:
        _running -= 1
    _next_spare()


def wait_ready(timeout: float = 120) -> bool:
    """Wait until the next night's spare is warm (benchmarks, tests: a night a day after the last
    finds it so); False if none is coming or it is not warm within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _lock:
            spare = _spare
        if spare is not None:
            return spare.wait_ready(max(0.0, deadline - time.monotonic()))
        time.sleep(0.05)
    return False


def _started() -> None:
    global _running
    with _lock:
        _running += 1


def _take_spare() -> _Spare | None:
    global _spare
    with _lock:
        spare, _spare = _spare, None
    return spare


class _SparePopen(popen_spawn_posix.Popen):
    """multiprocessing's spawn Popen, except that the process is the spare already waiting."""

    def _launch(self, process_obj):
        _started()  # before the spare is taken: a night ending meanwhile spawns none beside this one
        watched = False
        try:
            self._launch_in(_take_spare(), process_obj)
            if getattr(self, "sentinel", None) is not None:
                threading.Thread(target=_after, args=(os.dup(self.sentinel),), name="next night's spare",
                                 daemon=True).start()
                watched = True
        finally:
            if not watched:  # no night started (or it cannot be watched): counted as ended
                _ended()

    def _launch_in(self, spare: _Spare | None, process_obj) -> None:
        tracker_fd = resource_tracker.getfd()
        if spare is not None and not spare.usable(tracker_fd):
            spare.discard()
            spare = None
        if spare is None:
            return super()._launch(process_obj)
        try:
            self._fds.append(tracker_fd)
            prep_data = spawn.get_preparation_data(process_obj._name)
            fp = io.BytesIO()
            context.set_spawning_popen(self)
            try:
                reduction.dump(prep_data, fp)
                reduction.dump(process_obj, fp)
            finally:
                context.set_spawning_popen(None)
            if self._fds != [tracker_fd]:  # the process needs file descriptors the spare was not given
                raise _Cold
            with open(spare.to_child, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        except (_Cold, BrokenPipeError):  # BrokenPipe: it died a moment ago; either way spawned cold
            spare.discard()
            self._fds = []
            return super()._launch(process_obj)
        except BaseException:
            spare.discard()
            raise
        spare.close()
        self.pid, self.sentinel = spare.pid, spare.sentinel
        self.finalizer = util.Finalize(self, util.close_fds, (spare.sentinel, spare.to_child))


class _Cold(Exception):
    """This night is spawned cold."""


class _SpareProcess(context.SpawnProcess):
    _start_method = "spawn"

    @staticmethod
    def _Popen(process_obj):
        return _SparePopen(process_obj)


class _SpareContext(context.SpawnContext):
    Process = _SpareProcess


class _Multiprocessing:
    """``multiprocessing`` as prefect.flow_engine sees it: the "spawn" context is the spares'."""

    def __getattr__(self, name):
        return getattr(multiprocessing, name)

    @staticmethod
    def get_context(method=None):
        return _SpareContext() if method in (None, "spawn") else multiprocessing.get_context(method)


def warm_flow_runs() -> None:
    """Prefect's flow runs in this process (`sentinel serve`'s runner) start in warm spares, and the
    first spare is spawned now. Nothing is changed where ``run_flow_in_subprocess`` no longer asks
    ``multiprocessing`` for its context, or off POSIX; the runs then start as before."""
    import prefect.flow_engine as engine

    if getattr(engine, "multiprocessing", None) is not multiprocessing or os.name != "posix":
        return
    engine.multiprocessing = _Multiprocessing()
    atexit.register(_close)
    _next_spare()


def _imported(names: tuple[str, ...]) -> None:
    """In a night's process: exit 0 if every module of ``names`` was imported before the night came
    (tests/test_serve.py)."""
    sys.exit(0 if all(n in sys.modules for n in names) else 3)
