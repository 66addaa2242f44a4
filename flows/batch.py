"""What makes a batch safe, independent of Prefect: one batch at a time per warehouse, and a
batch that either commits completely or leaves the warehouse as it was.

- `batch_lock(warehouse)`: the warehouse's one-writer lock (data_contracts.warehouse.writer_lock,
  which `sentinel feedback` takes too): a second batch is refused (RefusedInput: exit 2); the
  operating system releases it when the process ends, so a killed batch leaves no stale lock. A
  batch holds its `--out`'s lock too (`output_lock`): two warehouses' batches never share one.
- `batch_gate(...)`: `sentinel run` checks its arguments, takes the lock, checks the batch date
  and the landing directory's names before Prefect starts, so that a refusal takes a moment; the
  flow inside reuses that lock (`flow_lock`); a served run, in a process of its own, takes it there.
- `check_warehouse(path)`: the warehouse path is usable (not a directory, not some other kind of
  file, its folder writable), said in one sentence before anything starts.
- `check_output_dir(out, ...)`: the batch never deletes or renames what it did not write: `--out`
  is new, empty, or holds a previous run's outputs (`MARKER`), and neither is nor holds the
  landing directory or the warehouse.
- `interruptible()` / `commit_point()`: Ctrl-C (SIGINT) and systemd's SIGTERM stop a batch within
  seconds before its commit point (`Interrupted`, exit 130/143, nothing committed); at the commit
  point they are held until the renames are done, and the batch says it finished.
- `WorkingCopy`: the batch writes to `.<warehouse>.batch`, a copy of the warehouse (or a new
  file), held open from entry to commit or discard (`data_contracts.warehouse.hold_open`: the
  stages connect to that one open database); `commit()` checkpoints and closes it, then renames
  it over the warehouse (an atomic rename on one file system). Until then the warehouse is
  untouched: a failed stage, a refused file or `kill -9` leave it exactly as it was, and analysts
  reading it meanwhile see last night's state.
- `StagedDir`: the same for a folder the batch replaces, the kept model (staged as a copy: the
  scorer may retrain it) and the outputs (staged empty): the batch writes `.<folder>.batch`,
  `commit()` swaps it in with two renames (`swap_dir`); a failed or killed batch leaves the folder
  as it was.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path

import duckdb

from data_contracts import warehouse
from data_contracts.errors import RefusedInput
from data_contracts.load import raw_folder
from data_contracts.warehouse import output_lock
from data_contracts.warehouse import writer_lock as batch_lock
from models import default_model_dir


MARKER = ".sentinel-output"  # written into every --out a batch fills: "this folder is ours to replace"

_gated: set[Path] = set()  # warehouses whose batch_gate this process is inside


@contextlib.contextmanager
def batch_gate(input_dir: Path, warehouse: Path, out_dir: Path, as_of: dt.date, replay: bool = False):
    """Everything a batch checks before Prefect starts: the arguments, the warehouse's lock, the
    batch date, the landing directory's names and headers. The flow inside it reuses its lock (`flow_lock`)."""
    key = Path(warehouse).resolve()
    if key in _gated:  # sentinel run's gate, then run_batch's: one lock
        yield
        return
    begin_batch()
    check_arguments(input_dir, warehouse, out_dir)
    with interruptible(), batch_lock(warehouse), output_lock(out_dir):
        check_as_of(as_of, warehouse, replay)
        from data_contracts.landing import precheck  # not before the lock: a second batch is refused at once

        precheck(input_dir)  # names, formats, required extracts, headers
        _gated.add(key)
        try:
            yield
        finally:
            _gated.discard(key)
            _signals.unwound.set()  # an interrupted batch got here: it needs no forced exit


def gated(warehouse: Path) -> bool:
    """This process passed `batch_gate` for this warehouse (sentinel run), so the flow need not check again."""
    return Path(warehouse).resolve() in _gated


@contextlib.contextmanager
def flow_lock(warehouse: Path, out_dir: Path):
    """The flow's locks, the warehouse's and the output folder's: the gate's when this process passed
    one (sentinel run), else its own (a served run, in a process of its own)."""
    if Path(warehouse).resolve() in _gated:
        yield
        return
    with batch_lock(warehouse), output_lock(out_dir):
        yield


def check_warehouse(warehouse: Path) -> None:
    """Refuse, in one sentence, a warehouse path the batch cannot use (RefusedInput, exit 2)."""
    warehouse = Path(warehouse)
    if warehouse.is_symlink():  # the commit renames a new file over the name: the link, not its file
        raise RefusedInput(warehouse, f"is a symlink; give the file it points to ({warehouse.resolve()}): a batch "
                                      "replaces the warehouse by renaming its new copy over the name it is given")
    if warehouse.is_dir():
        raise RefusedInput(warehouse, "is a directory; --warehouse names a DuckDB file, e.g. "
                                      f"{warehouse / 'warehouse.duckdb'}")
    if warehouse.exists():
        if not warehouse.is_file():
            raise RefusedInput(warehouse, "is not a regular file; --warehouse names a DuckDB file")
        with open(warehouse, "rb") as f:
            head = f.read(12)
        if len(head) < 12 or head[8:12] != b"DUCK":
            raise RefusedInput(warehouse, "is not a DuckDB file (a warehouse of welfare-sentinel is one); "
                                          "name another file, or move this one away")
    raw_folder(warehouse)  # refuses a path the raw_* views could not name (a wildcard character)
    folder = warehouse.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RefusedInput(folder, "is not writable: the batch writes its working copy beside the warehouse; "
                                   "choose a writable folder or fix its permissions")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_dir(out: Path, *, protected: dict[str, Path], marker: str = MARKER, what: str = "--out") -> None:
    """Refuse an output directory the batch would have to delete something it did not write to fill:
    it must be new, empty, or hold exactly a previous run's outputs (listed in `marker`, unchanged
    since), and neither be nor contain nor sit inside any `protected` path (the landing directory,
    the warehouse), nor be a symlink (the swap would replace the link, not fill the folder)."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = out.resolve()
    if out.is_symlink():
        raise RefusedInput(out, f"{what} is a symlink; give the folder it points to ({out.resolve()}), or a new "
                                "folder inside it")
    resolved = out.resolve()
    for label, p in protected.items():
        p = Path(p).resolve()
        if _inside(p, resolved) or _inside(resolved, p):
            rel = "is" if p == resolved else ("contains" if _inside(p, resolved) else "is inside")
            raise RefusedInput(out, f"{what} {rel} the {label} ({p}); choose a folder of its own for the outputs")
    if out.exists() and not out.is_dir():
        raise RefusedInput(out, f"{what} exists and is not a directory; choose a folder for the outputs")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / marker).exists():
        if marker != MARKER and (out / MARKER).exists():  # `sentinel audit --out` given a batch's --out
            raise RefusedInput(out, f"{what} is a batch's output folder (it holds {MARKER}); choose a folder of "
                                    "its own (nothing in it was touched)")
        raise RefusedInput(out, f"{what} is not empty and holds no earlier output of welfare-sentinel; "
                                "choose a new or empty folder (nothing in it was touched)")
    strangers = _not_ours(out, marker)
    if strangers:
        shown = ", ".join(strangers[:3]) + (f" and {len(strangers) - 3} more" if len(strangers) > 3 else "")
        raise RefusedInput(out, f"{what} holds files the last batch did not write, or that changed since it did "
                                f"({shown}); the next batch replaces the folder whole, so move them elsewhere "
                                "first (a list filled in there: `sentinel feedback` it, then move it)")


# Spreadsheets' lock files of a list someone has open: theirs, transient, replaced with the folder.
_TRANSIENT = re.compile(r"^(\.~lock\..*#|~\$.*)$")


def _files(folder: Path, marker: str) -> dict[str, list[int]]:
    stats = {p: p.stat() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != marker}
    return {str(p.relative_to(folder)): [st.st_size, st.st_mtime_ns] for p, st in stats.items()}


def mark_outputs(folder: Path, marker: str = MARKER) -> None:
    """Write `marker`: the files a batch put in its output folder, each with its size and time, so
    that the next batch replaces the folder only if nothing else is in it."""
    body = {"written_by": "welfare-sentinel", "files": _files(folder, marker)}
    (folder / marker).write_text(json.dumps(body, ensure_ascii=False, indent=0), encoding="utf-8")


def _written(out: Path, marker: str) -> dict | None:
    """The files `marker` lists, with their size and time as the last batch wrote them; None if it
    is missing or not a marker a batch wrote."""
    try:
        return json.loads((Path(out) / marker).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unchanged_outputs(out: Path, marker: str = MARKER) -> dict[str, Path]:
    """The files of the last batch's outputs in `out` that are as it wrote them (size and time as
    its `marker` lists them), by their path relative to `out`: what the next batch may copy."""
    written = _written(out, marker) or {}
    return {rel: Path(out) / rel for rel, stat in _files(Path(out), marker).items() if written.get(rel) == stat}


def _not_ours(out: Path, marker: str) -> list[str]:
    written = _written(out, marker)
    if written is None:
        return [marker]  # not a marker a batch wrote
    strangers = [rel for rel, stat in _files(out, marker).items()
                 if written.get(rel) != stat and not _TRANSIENT.match(Path(rel).name)]
    # a folder someone made there (an empty 已核查/ to sort the returned lists into) would go with the
    # swap as surely as a file: the batch's own folders are those its files are in
    ours = {parent for rel in written for parent in Path(rel).parents}
    return strangers + [f"{d.relative_to(out)}/" for d in sorted(out.rglob("*"))
                        if d.is_dir() and not d.is_symlink() and d.relative_to(out) not in ours]


# ----------------------------------------------------------------------------- interrupts

class Interrupted(BaseException):
    """Ctrl-C or SIGTERM before the commit point: nothing was committed (exit 128 + signal)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name} before the commit point: "
                         "the warehouse and the lists were left as they were")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


FORCE_EXIT_AFTER = 8.0  # seconds an interrupted batch may take to unwind before it is ended outright


class _Signals:
    """SIGINT/SIGTERM handling for the batch in this process's main thread."""

    def __init__(self):
        self.deferring = 0  # inside commit_point
        self.committed = False  # the batch has reached its commit point: no signal undoes it now
        self.received: int | None = None  # the signal that interrupted the batch
        self.pending: int | None = None  # a signal that came at or after the commit point
        self.quiet = False  # after an interrupt, what Prefect prints while it unwinds stays off the terminal
        self.force_exit = False  # a command-line process ends outright if unwinding hangs (never a test's)
        self.saved_stderr = None
        self.unwound = threading.Event()  # set when the interrupted batch has unwound: no forced exit

    def begin(self) -> None:
        self.committed, self.received, self.pending = False, None, None
        self.unwound = threading.Event()

    def _silence(self) -> None:
        if self.quiet and self.saved_stderr is None:  # our last line goes to the saved stream
            self.saved_stderr, sys.stderr = sys.stderr, open(os.devnull, "w")

    def _watch(self, signum: int) -> None:
        # Unwinding normally takes a moment. A Ctrl-C at the terminal also reaches Prefect's
        # temporary server (same process group), and Prefect's client would then retry for minutes
        # to report the run: past the grace period the process ends outright.
        if self.force_exit:
            threading.Thread(target=_force_exit, args=(signum, self.unwound), daemon=True,
                             name="sentinel-force-exit").start()

    def handler(self, signum, frame):
        if self.deferring or self.committed:
            if self.pending is None:
                self.pending = signum
                when = "at" if self.deferring else "after"
                print(f"sentinel: {signal.Signals(signum).name} received {when} the commit point: "
                      "finishing the batch first", file=sys.stderr, flush=True)
                self._silence()
                self._watch(signum)
            return
        if self.received:  # a second Ctrl-C while unwinding: the first one is being handled
            return
        self.received = signum
        self._silence()
        self._watch(signum)
        raise Interrupted(signum)


def _children() -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            pids.append(int(stat.parent.name))
    return pids


_cleanups: list = []  # what a batch ended outright must still remove (its working copy, its staged folders)


def _force_exit(signum: int, unwound: threading.Event) -> None:
    if unwound.wait(FORCE_EXIT_AFTER):
        return
    while _signals.deferring:  # never cut the commit's renames short
        unwound.wait(0.1)
    terminal = _signals.saved_stderr or sys.stderr
    if _signals.committed:
        print(f"sentinel: the batch was committed; ended at the {signal.Signals(signum).name} without waiting for "
              "Prefect's API", file=terminal, flush=True)
        code = 0
    else:
        for fn in list(_cleanups):
            with contextlib.suppress(Exception):
                fn()
        print(f"sentinel: {Interrupted(signum)} (ended without waiting for Prefect's API)", file=terminal, flush=True)
        code = 128 + signum
    for pid in _children():  # Prefect's temporary server, if it is still up
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    os._exit(code)


_signals = _Signals()


def command_line_process(quiet: bool) -> None:
    """This process is `sentinel` at a terminal or under systemd: an interrupted batch that cannot
    unwind in time ends outright, and (`quiet`, no -v) says one line, not Prefect's unwinding."""
    _signals.quiet = quiet
    _signals.force_exit = True


def begin_batch() -> None:
    """A new batch in this process: nothing interrupted or committed yet."""
    _signals.begin()


def interrupt_handled():
    """The interrupted batch has unwound (no forced exit needed; ready for another batch). Returns
    the terminal's stream for the last line: after a quiet interrupt, what Prefect still prints
    while the process exits (its log handler failing to reach a dead server) stays silenced."""
    _signals.unwound.set()
    _signals.received = None
    terminal, _signals.saved_stderr = _signals.saved_stderr or sys.stderr, None
    return terminal


def committed() -> bool:
    """This process's batch has passed its commit point: whatever fails now, it is in."""
    return _signals.committed


def interrupted_by() -> int | None:
    """The signal that interrupted this process's batch, if one did (DuckDB turns it into its own
    'Query interrupted' error when it arrives mid-query)."""
    return _signals.received


@contextlib.contextmanager
def interruptible():
    """Within this block SIGINT and SIGTERM raise `Interrupted` in the main thread (elsewhere a no-op:
    a batch run by another thread keeps its host's handling). Installed again at each level: Prefect
    puts a SIGTERM handler of its own in place when a flow run starts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # a SIGINT ignored on entry stays ignored (a job started in the background with `&`, or nohup)
    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, _signals.handler) for s in wanted}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def commit_point():
    """Hold SIGINT/SIGTERM while the batch commits and renames, and after it: from here on the
    batch is finished, not undone (`interrupt_received_at_commit` tells whether a signal came; the
    batch then says that it finished anyway)."""
    _signals.deferring += 1
    try:
        yield
        _signals.committed = True
    finally:
        _signals.deferring -= 1


def interrupt_received_at_commit() -> int | None:
    """The signal held at the last commit point (and forget it)."""
    s, _signals.pending = _signals.pending, None
    return s


# ----------------------------------------------------------------------------- arguments

def today(timezone: str | None = None) -> dt.date:
    """The batch date: today where the city is (`timezone`, else SENTINEL_TIMEZONE, default
    Asia/Shanghai), not on the host's clock (a 02:00 run on a UTC host would otherwise be dated
    yesterday)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(timezone or os.environ.get("SENTINEL_TIMEZONE", "Asia/Shanghai"))).date()


FUTURE_MARGIN_DAYS = 3  # --as-of may run ahead of today where the city is by this much (time zones, a late clock)


def check_arguments(input_dir: Path, warehouse: Path, out_dir: Path) -> None:
    """What needs no Prefect and no lock: the landing directory, the warehouse path, the output folder."""
    if not input_dir.is_dir():
        raise RefusedInput(input_dir, "landing directory not found (or not a directory)")
    check_warehouse(warehouse)
    check_output_dir(out_dir, protected={"landing directory": input_dir, "warehouse": warehouse,
                                         "model folder": default_model_dir(warehouse)})


from data_contracts.dialect import ENGINES  # noqa: E402 -- the one list of engines


def check_engine(engine: str, stage_uri: str | None, input_dir: Path | None = None,
                 out_dir: Path | None = None, spark_master: str | None = None) -> None:
    """--engine, --stage-uri and --spark-master, before anything starts: a known engine; pyspark
    installed for Spark; the Spark options only with Spark (an operator who gave a cluster and forgot
    --engine spark would otherwise run on DuckDB believing it ran on the cluster); a local stage
    outside the landing directory and the output folder (the stage's batch folders are written and
    removed each night)."""
    if engine not in ENGINES:
        raise RefusedInput("--engine", f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
    if engine == "duckdb":
        if stage_uri:
            raise RefusedInput("--stage-uri", "is where --engine spark reads the staged tables; "
                                              "the default engine (duckdb) has no stage")
        if spark_master:
            raise RefusedInput("--spark-master", "is the cluster --engine spark runs the rules on; without "
                                                 "--engine spark the rules run on DuckDB: add --engine spark, or "
                                                 "leave --spark-master out")
        return
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise RefusedInput("--engine spark", "needs pyspark, which is not installed: "
                                             "pip install 'welfare-sentinel[spark]'")
    if stage_uri and "://" not in stage_uri[2:] or stage_uri and stage_uri.startswith("file://"):
        local = Path(stage_uri.removeprefix("file://")).absolute()
        for what, folder in (("landing directory", input_dir), ("output folder", out_dir)):
            if folder is not None and (local == folder.absolute() or folder.absolute() in local.parents):
                raise RefusedInput("--stage-uri", f"is inside the {what} ({folder}): choose a folder of its own")


def last_batch_date(warehouse: Path) -> dt.date | None:
    if not warehouse.exists():
        return None
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'").fetchone()[0]:
                return None
            return con.execute("SELECT max(as_of) FROM runs WHERE outcome = 'succeeded'").fetchone()[0]
    except duckdb.IOException:  # held by a writer: the lock below, or the working copy's checkpoint, says so
        return None


def check_as_of(as_of: dt.date, warehouse: Path, replay: bool) -> None:
    """A batch date before the warehouse's last batch would write history backwards, one far in the
    future is a typo: both are refused unless the operator says --replay."""
    if replay:
        return
    last = last_batch_date(warehouse)
    if last is not None and as_of < last:
        raise RefusedInput(warehouse, f"--as-of {as_of} is before this warehouse's last batch ({last}); "
                                      "run with --replay if you mean to replay an earlier night")
    if as_of > today() + dt.timedelta(days=FUTURE_MARGIN_DAYS):
        raise RefusedInput(warehouse, f"--as-of {as_of} is more than {FUTURE_MARGIN_DAYS} days after today "
                                      f"({today()}); run with --replay if you mean it")


def _no_space(e: OSError, path: Path) -> RefusedInput:
    return RefusedInput(path, "no space left on the device; free space there (the batch needs about twice the "
                              "warehouse's size) and run again: nothing was changed")


class _Staged:
    """What the batch stages at `path`, beside what it replaces on commit: removed at entry (what a
    killed batch may have left), when the block is left and by a forced exit, if still there."""

    path: Path

    def __enter__(self):
        self.discard()
        _cleanups.append(self.discard)
        try:
            self._stage()
        except BaseException:  # a refusal, a full disk, Ctrl-C mid-copy: no half copy stays behind
            self.__exit__()
            raise
        return self

    def _stage(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc) -> None:
        if self.discard in _cleanups:
            _cleanups.remove(self.discard)
        self.discard()


class WorkingCopy(_Staged):
    def __init__(self, warehouse: Path):
        self.warehouse = Path(warehouse)
        self.path = self.warehouse.with_name(f".{self.warehouse.name}.batch")

    def _stage(self) -> None:
        if not self.warehouse.exists():
            return
        if self.wal.exists():
            # fold the write-ahead log into the file first, so that the copy is the whole state
            # (only then: opening the warehouse to write would fail while a notebook reads it)
            try:
                with duckdb.connect(str(self.warehouse)) as con:
                    con.execute("CHECKPOINT").fetchall()
            except duckdb.IOException as e:
                raise RefusedInput(self.warehouse, f"has unsaved changes and is in use by another process ({e})"
                                   ) from None
        try:
            shutil.copyfile(self.warehouse, self.path)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise _no_space(e, self.path.parent) from None
            raise

    def __enter__(self):
        super().__enter__()
        try:  # the stages' connections to one open database (warehouse.connect), until commit or discard
            warehouse.hold_open(self.path)
        except BaseException:
            self.__exit__()
            raise
        return self

    @property
    def wal(self) -> Path:
        return self.warehouse.with_name(self.warehouse.name + ".wal")

    def commit(self) -> None:
        if not warehouse.let_go(self.path, checkpoint=True):
            with duckdb.connect(str(self.path)) as con:
                con.execute("CHECKPOINT").fetchall()
        if self.wal.exists():  # nobody may write the warehouse under the lock; a log now is not ours
            raise RuntimeError(f"{self.wal} appeared during the batch; the warehouse was left as it was")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.path, self.warehouse)

    def discard(self) -> None:
        try:  # closing fails if a forced exit comes while DuckDB runs a statement: delete the files anyway
            warehouse.let_go(self.path)
        except Exception:
            pass
        for p in (self.path, self.path.with_name(self.path.name + ".wal")):
            if p.exists():
                p.unlink()
        # what DuckDB spilled beyond its memory limit (data_contracts.warehouse.configure) to its
        # default temporary folder beside the working copy: a killed batch leaves it behind
        spilled = self.path.with_name(self.path.name + ".tmp")
        if spilled.is_dir() and not spilled.is_symlink():
            shutil.rmtree(spilled, ignore_errors=True)


class StagedDir(_Staged):
    """A folder the batch replaces only when it commits (see the module docstring): `.<name>.batch`
    beside it, made at entry as a copy of the folder (`copy=True`: the kept model, which the scorer
    may retrain) or left for the batch to fill (the outputs); `commit()` swaps it in."""

    def __init__(self, target: Path, copy: bool = False):
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.name}.batch")
        self.copy = copy

    def _stage(self) -> None:
        if self.copy and self.target.exists():
            shutil.copytree(self.target, self.path)

    def commit(self) -> None:
        """Put the staged folder in place of the target (nothing staged: the target stays as it is)."""
        if self.path.exists():
            swap_dir(self.path, self.target)

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def swap_dir(staging: Path, target: Path) -> None:
    """Put a finished directory in place of `target` with two renames. The new directories get the
    permissions an existing target had (its group and setgid bit too: a share the verifiers read),
    else those of an ordinary new folder (tempfile.mkdtemp makes 0700)."""
    mode, group = 0o777 & ~_umask(), None
    if target.is_dir():
        st = target.stat()
        mode, group = st.st_mode & 0o7777, st.st_gid
    for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
        folder.chmod(mode)
        if group is not None and folder.stat().st_gid != group:
            with contextlib.suppress(OSError):
                os.chown(folder, -1, group)
    old = target.with_name(f".{target.name}-old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
