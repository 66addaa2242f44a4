"""Prefect's API for `sentinel run`, started alongside the first work instead of before it.

With no Prefect API configured, Prefect starts a temporary local server (a uvicorn subprocess) the
first time a flow run needs its API, and waits for it: about 8 s on an idle machine (its own imports),
plus 3.6 s in this process to import the server's code only to start it, during which the batch does
nothing. Instead, `sentinel run` calls `start_in_background()` as soon as its gate has passed (a
refused batch starts nothing), before this process imports Prefect: the same server (Prefect's own
command for its temporary server, `uvicorn prefect.server.api.server:create_app`, on a free loopback
port, with Prefect's own home and database) starts while the batch's code loads and the ingest runs
(flows/launch.py `run_batch`, while `starting()`); PREFECT_API_URL in this process's environment
points the flow run at it, and `wait()` returns once it answers. It is stopped when the process exits (atexit), killed
with it if the process is killed (the kernel's parent-death signal), and stopped by the forced exit
of an interrupted batch (flows/batch.py) like any child. What it prints goes to
`$PREFECT_HOME/sentinel-temporary-server.log` (the last run's), named in the error if it fails to start.
The port is a free one the system gives; should another process take it in the moment before the
server binds it, the batch fails saying so (Prefect's own starter would try another port).

A fresh Prefect home (a new warehouse's first night) would make the server build Prefect's database:
some 150 migrations and the registration of Prefect's block types, 6 CPU-seconds (9 s of 10 on
an idle machine, and on a busy one taken from the ingest's two cores) before it answers. The
database they build is the same for every home of one Prefect version, so the first server that
builds it in this Python environment keeps a copy (`template_path()`: the environment's
share/welfare-sentinel/prefect-<version>.db, or $SENTINEL_PREFECT_TEMPLATES/), taken once it
answers and before any flow run, with nothing but the schema and the block types in it; the next
fresh home starts from that copy and the server skips the block registration the copy already
holds (3.5 CPU-seconds: its imports). Only Prefect's default SQLite database in a home that has
none is made so; a database Prefect is told about (PREFECT_*DATABASE* in the environment or the
profile) is left to Prefect.

Nothing is started where an API is configured: PREFECT_API_URL in the environment or in the active
Prefect profile (a site's server; `sentinel serve` sets it for its runs), or a host that has already
loaded Prefect (a test harness, a notebook), which then runs the flow as Prefect would.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import importlib.metadata
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

# offline and quiet unless the operator says otherwise (STACK-NOTES.md); set before Prefect loads and
# before its server starts (it inherits them: else it tries to send telemetry)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

# jsonschema (which Prefect loads, in this process and in its server) registers a checker for the
# "iri" formats when rfc3987_syntax is installed, and importing that builds a grammar: 1.0 s of every
# `sentinel run`'s start, and as much of the server's. Nothing here validates an IRI (Prefect checks
# a flow's parameters against their schema, and ours have none), and jupyterlab is why it is
# installed at all (jupyter-events asks for jsonschema[format-nongpl]). Marking it absent
# (`sys.modules[...] = None`, Python's own way to say a module cannot be imported) makes jsonschema
# skip that checker, as it does where the package is not installed.
UNUSED = ("rfc3987_syntax",)


def skip_unused_imports() -> None:
    """Before Prefect loads in this process: the packages in :data:`UNUSED` read as not installed."""
    for name in UNUSED:
        sys.modules.setdefault(name, None)


# the temporary server's start: uvicorn's own command line (`python -m uvicorn ...`) after the same
_SERVER_MAIN = ("import sys\n"
                f"for name in {UNUSED!r}:\n"
                "    sys.modules.setdefault(name, None)\n"
                "sys.argv[0] = 'uvicorn'\n"
                "from uvicorn.main import main\n"
                "main()\n")

# Prefect's logging levels `sentinel` sets for its terminal (flows/cli.py), never passed to the server
TERMINAL_LOGGING = ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_LOGGING_ROOT_LEVEL",
                    "PREFECT_LOGGING_HANDLERS_DEBUG_LEVEL")  # the last: Prefect's internal services

_server: subprocess.Popen | None = None
_url: str | None = None
_log: Path | None = None
_healthy = False
_template_to_save: tuple[Path, Path] | None = None  # (the home's database, the template to keep)


def _configured() -> bool:
    """An API may be configured, or a host runs Prefect already: start nothing (Prefect then does what
    it always does). Read without loading Prefect: the environment, the active profile, and the
    settings files Prefect reads from the working directory (a `.env`, `prefect.toml`, or
    `pyproject.toml` with a [tool.prefect] table) -- any of those files counts, whatever it sets."""
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules:
        return True
    if os.environ.get("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "").lower() in ("false", "0"):
        return True
    cwd = Path.cwd()
    try:
        if ((cwd / "prefect.toml").exists() or "PREFECT_" in _text(cwd / ".env")
                or "[tool.prefect" in _text(cwd / "pyproject.toml")):
            return True
    except OSError:
        return True
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    try:
        import tomllib

        path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
        profiles = tomllib.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError):
        return True  # a profiles file it cannot read: let Prefect decide
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the server's process before it runs: SIGTERM when the batch's process dies, however it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    # while it loads, the terminal's Ctrl-C is the batch's to handle (uvicorn takes SIGINT over once up)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_in_background() -> None:
    """Start Prefect's temporary server for this process (once); returns at once."""
    global _server, _url, _log
    skip_unused_imports()
    if _server is not None or _configured():
        return
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        return
    port = _free_port()
    _url = f"http://127.0.0.1:{port}/api"
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()  # sentinel run sets it
    home.mkdir(parents=True, exist_ok=True)
    _log = home / "sentinel-temporary-server.log"  # the last run's, replaced by the next
    app_dir = Path(list(spec.submodule_search_locations)[0]).parent
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    # what the batch's terminal is kept quiet with (flows/cli.py) is not the server's: what it says
    # goes to its own log, the file an error names
    for key in TERMINAL_LOGGING:
        env.pop(key, None)
    if _from_template(home):
        env["PREFECT_SERVER_REGISTER_BLOCKS_ON_START"] = "false"  # the copy holds them
    with open(_log, "wb") as log:
        _server = subprocess.Popen(
            [sys.executable, "-c", _SERVER_MAIN, "--app-dir", str(app_dir), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "error", "--lifespan", "on"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    os.environ["PREFECT_API_URL"] = _url  # before this process loads Prefect's settings
    atexit.register(stop)


def template_path() -> Path | None:
    """Where this Python environment keeps the copy of a fresh Prefect database, one per Prefect version."""
    try:
        version = importlib.metadata.version("prefect")
    except importlib.metadata.PackageNotFoundError:
        return None
    where = os.environ.get("SENTINEL_PREFECT_TEMPLATES") or Path(sys.prefix) / "share" / "welfare-sentinel"
    return Path(where) / f"prefect-{version}.db"


def _default_database(home: Path) -> Path | None:
    """The home's SQLite database as Prefect makes it by default, or None where Prefect is told of another."""
    if any(k.upper().startswith("PREFECT_") and "DATABASE" in k.upper() for k in os.environ):
        return None
    if "DATABASE" in _text(Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml")).upper():
        return None
    return home / "prefect.db"


def _from_template(home: Path) -> bool:
    """A home without a database gets the template's copy (True), or, if there is no template yet, the
    server's database is kept as the template once it answers (`wait`). Any error: Prefect builds it."""
    try:
        return _copy_template(home)
    except Exception:  # noqa: BLE001 -- a template is an optimisation: never a reason to fail a batch
        return False


def _copy_template(home: Path) -> bool:
    global _template_to_save
    db = _default_database(home)
    template = template_path()
    if db is None or template is None or db.exists() or db.with_name(db.name + "-wal").exists():
        return False
    if not _usable(template):
        _template_to_save = (db, template)  # none yet, or not a database: replaced by this home's
        return False
    tmp = db.with_name(f".{db.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(template, tmp)
        os.replace(tmp, db)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def _usable(template: Path) -> bool:
    """The template is a database Prefect's migrations have run on, with no flow run in it (a few
    milliseconds; a used prefect.db put in its place is not copied into new homes)."""
    try:
        if not template.is_file():
            return False
        with contextlib.closing(sqlite3.connect(f"{template.absolute().as_uri()}?mode=ro", uri=True)) as con:
            return (len(con.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
                    and con.execute("SELECT count(*) FROM flow_run").fetchone()[0] == 0)
    except (OSError, sqlite3.Error):
        return False


def _save_template(db: Path, template: Path) -> None:
    """Keep the freshly built `db` as `template`: a consistent copy (SQLite's backup, while the server
    runs), kept only if it is whole and holds the schema and block types and no run, log or event."""
    tmp = template.with_name(f".{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True)) as src, \
                contextlib.closing(sqlite3.connect(tmp)) as dst:
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")
            check = dst.execute("PRAGMA integrity_check").fetchall()
            counts = dst.execute(
                "SELECT (SELECT count(*) FROM alembic_version), (SELECT count(*) FROM block_type),"
                " (SELECT count(*) FROM flow) + (SELECT count(*) FROM flow_run) + (SELECT count(*) FROM task_run)"
                " + (SELECT count(*) FROM log) + (SELECT count(*) FROM events)").fetchone()
        if check == [("ok",)] and counts[0] == 1 and counts[1] > 0 and counts[2] == 0:
            os.replace(tmp, template)
    except Exception:  # noqa: BLE001 -- no template kept: the next new home builds its database again
        pass
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def starting() -> bool:
    """A server was started for this process and has not answered yet."""
    return _server is not None and not _healthy


_waiting = threading.Lock()  # the batch's thread and the loading thread (flows/launch.py) may both wait
_deadline: float | None = None  # one for both threads: the first wait()'s start, plus the timeout


def wait() -> None:
    """Return once the server started by `start_in_background` answers (a no-op if none was).
    A server that exits or does not answer in time is an error naming its log."""
    if _server is None or _healthy:
        return
    with _waiting:
        _wait()


def _wait() -> None:
    global _healthy, _deadline
    if _healthy:
        return
    timeout = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"))
    if _deadline is None:
        _deadline = time.monotonic() + timeout
    deadline = _deadline
    while True:
        if _server.poll() is not None:
            raise RuntimeError(f"Prefect's temporary server exited with status {_server.returncode} before it "
                               f"answered; its output: {_log}")
        try:
            with urllib.request.urlopen(f"{_url}/health", timeout=2) as r:
                if r.status == 200:
                    if _template_to_save:
                        _save_template(*_template_to_save)
                    _healthy = True
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Prefect's temporary server did not answer within {timeout:.0f} s "
                               f"(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS); its output: {_log}")
        time.sleep(0.1)


@contextlib.contextmanager
def flow_run_settings():
    """Prefect's settings for the flow run on the temporary server started here: no flow-run
    heartbeats. They are for a long-lived server to tell a crashed run by their absence; this
    server stops with the process, and the heartbeat thread, joined at the end of the run, cost up
    to 1 s of every batch (it sleeps in steps of one second). Elsewhere nothing changes."""
    if _server is None:
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def heartbeats_unjoined() -> None:
    """A flow run's heartbeat thread stopped at the end of the run but not waited for.

    On a long-lived server (``sentinel serve``, a site's server) Prefect sends a flow run's
    heartbeats from a thread that sleeps in steps of one second; at the end of a synchronous run
    Prefect sets the thread's stop event, then joins it: up to 1 s, 0.5 s on average, of every
    night, after the batch has committed (``nightly.py`` measured 0.48 and 0.73 s on nights of 3 s).
    Prefect's own async engine does not join it (``join_on_exit=False``, the parameter this sets):
    the thread sends no heartbeat once the event is set and ends at its next step. Applied once,
    by flows/nightly.py, where ``prefect.flow_engine._send_heartbeats`` takes that parameter
    (Prefect 3.8, requirements.lock); if a later Prefect changes it, nothing is patched and the runs
    wait for the thread as before (tests/test_nightly.py checks the patch is in place)."""
    import inspect

    import prefect.flow_engine as engine

    send = getattr(engine, "_send_heartbeats", None)
    if send is None or getattr(send, "unjoined", False):
        return
    if "join_on_exit" not in inspect.signature(send).parameters:
        return

    def _send_heartbeats(flow_engine, join_on_exit: bool = True, *args, **kwargs):
        return send(flow_engine, False, *args, **kwargs)  # whatever else a later Prefect passes, passed on

    _send_heartbeats.unjoined = True
    engine._send_heartbeats = _send_heartbeats


def stop() -> None:
    """Stop the server (at exit): SIGTERM, and no wait for its shutdown (0.17 s of every batch's end,
    after the result was printed). Whatever the run sent was answered before (Prefect's log and event
    workers are waited for first); the server closes its database on its own, as uvicorn does on
    SIGTERM, after this process has gone."""
    if _server is None:
        return
    if _server.poll() is None:
        _server.terminate()
