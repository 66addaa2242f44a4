"""`sentinel serve`'s nights start in a spare process that is already warm.

Prefect's runner starts every scheduled flow run in a process of its own, made with
multiprocessing's "spawn" (``prefect.flow_engine.run_flow_in_subprocess``): a new interpreter
that imports Prefect and the flow's code, checks the rules' SQL (``rules.catalog``), and only
then begins the batch. At 1M persons that was 1.5-2 s of a night where nothing new arrived (3.5 s
in all, 1.6 s of it the batch).

:func:`warm_flow_runs` gives the runner a "spawn" context whose processes are spares: the next
night's process is spawned ahead of time, the moment the last one was handed out, as an
interpreter that imports everything a night imports (:mod:`flows.warm`) and then waits, reading
multiprocessing's own pipe, for the flow run Prefect will send it. When the runner starts a flow
run, the spare receives what a spawned process would have received (multiprocessing's
preparation data and the pickled process) and runs it exactly as a spawned one would: it is the
runner's child, watched, cancelled and killed as before. Unlike a fork, nothing is copied from a
process with threads, so the spare may import polars, pyarrow, pandera and scikit-learn (which
start threads on import) and read the rule catalogue.

A spare costs its memory while it waits (about 0.4 GB) and keeps the code of the moment it was
spawned: after an upgrade, restart serve (the spare waiting then is the only one with the old
code). A spare that died, or whose imports failed, is not used: that night is spawned cold, as
Prefect would, and a new spare is made for the next. A waiting spare ignores Ctrl-C (it is
serve's to handle) and leaves quietly when serve ends (its pipe closes).
"""
from __future__ import annotations

import io
import multiprocessing
import os
import select
import sys
import threading
import time
from multiprocessing import context, popen_spawn_posix, reduction, resource_tracker, spawn, util

# What a spare runs: the warm imports, then multiprocessing's own spawn_main on the pipe it was
# given, once that pipe has something to read (or has closed: then it exits quietly). Ctrl-C is
# ignored until the night arrives, then handled as in any spawned process.
_PROGRAM = """\
import os, select, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    import flows.warm
    flows.warm.ready_for_a_night()
except Exception as e:
    print(f"serve: a night's spare process could not warm up ({{type(e).__name__}}: {{e}}); it runs cold",
          file=sys.stderr, flush=True)
os.close({ready})
select.select([{pipe}], [], [])
signal.signal(signal.SIGINT, signal.default_int_handler)
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
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        self._ready, ready_w = os.pipe()  # closed by the spare once warm
        cmd = spawn.get_command_line(tracker_fd=self.tracker_fd, pipe_handle=child_r)
        cmd[cmd.index("-c") + 1] = _PROGRAM.format(tracker=self.tracker_fd, pipe=child_r, ready=ready_w)
        try:
            self.pid = util.spawnv_passfds(spawn.get_executable(), cmd, [self.tracker_fd, child_r, child_w, ready_w])
        finally:
            for fd in (child_r, child_w, ready_w):
                os.close(fd)
        self.sentinel, self.to_child = parent_r, parent_w

    def wait_ready(self, timeout: float) -> bool:
        """Whether it is warm (or has ended) within ``timeout`` seconds."""
        return bool(select.select([self._ready], [], [], timeout)[0])

    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            return False
        return pid == 0

    def close(self) -> None:
        """Its pipe closed (the process itself goes on, if it was handed a night)."""
        util.close_fds(self._ready)

    def discard(self) -> None:
        """Close its pipes (it exits on its own) and reap it."""
        util.close_fds(self.sentinel, self.to_child, self._ready)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


_lock = threading.Lock()
_spare: _Spare | None = None


def _next_spare() -> None:
    """Spawn the spare of the next night, unless one is waiting."""
    global _spare
    with _lock:
        if _spare is None:
            _spare = _Spare()


def _after(sentinel: int) -> None:
    """Once the night's process has ended (its sentinel readable, a copy of it), the next spare: not
    while the night runs, whose cores its imports would take."""
    try:
        select.select([sentinel], [], [])
    finally:
        os.close(sentinel)
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


def _take_spare() -> _Spare | None:
    global _spare
    with _lock:
        spare, _spare = _spare, None
    return spare


class _SparePopen(popen_spawn_posix.Popen):
    """multiprocessing's spawn Popen, except that the process is the spare already waiting."""

    def _launch(self, process_obj):
        try:
            self._launch_in(_take_spare(), process_obj)
        finally:
            if getattr(self, "sentinel", None) is not None:
                threading.Thread(target=_after, args=(os.dup(self.sentinel),), name="next night's spare",
                                 daemon=True).start()

    def _launch_in(self, spare: _Spare | None, process_obj) -> None:
        tracker_fd = resource_tracker.getfd()
        if spare is not None and (not spare.alive() or spare.tracker_fd != tracker_fd):
            spare.discard()
            spare = None
        if spare is None:
            return super()._launch(process_obj)
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
            spare.discard()
            self._fds = []
            return super()._launch(process_obj)
        spare.close()
        self.pid, self.sentinel = spare.pid, spare.sentinel
        self.finalizer = util.Finalize(self, util.close_fds, (spare.sentinel, spare.to_child))
        with open(spare.to_child, "wb", closefd=False) as f:
            f.write(fp.getbuffer())


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
    _next_spare()


def _imported(names: tuple[str, ...]) -> None:
    """In a night's process: exit 0 if every module of ``names`` was imported before the night came
    (tests/test_serve.py)."""
    sys.exit(0 if all(n in sys.modules for n in names) else 3)
