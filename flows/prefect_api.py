"""Prefect's API for this process, started alongside the first work instead of before it.

With no PREFECT_API_URL, Prefect starts a temporary local server (a uvicorn subprocess) the first
time a flow run needs its API, and waits for it: 7-8 s on an idle machine (up to 22 s under load)
during which the batch does nothing. `sentinel run` calls `start_in_background()` once its gate has
passed (a refused batch starts nothing) and goes on importing the batch's machinery meanwhile;
`run_batch` calls `wait()` just before the flow starts, so that the flow finds the server up.

The server is Prefect's own (`SubprocessASGIServer`, one per process): started here, Prefect's
client finds it running and reuses it, and stops it at exit as usual. Where an API is configured
(PREFECT_API_URL, a test harness) or the temporary server is disabled, nothing is started.
"""
from __future__ import annotations

import contextvars
import logging
import os
import threading

log = logging.getLogger(__name__)

# offline and quiet unless the operator says otherwise (STACK-NOTES.md); set before Prefect loads and
# before its temporary server starts (it inherits them: else it tries to send telemetry)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

_thread: threading.Thread | None = None
_error: BaseException | None = None


def _start() -> None:
    global _error
    try:
        from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

        if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
            return
        _server_class()().start()
    except BaseException as e:  # the flow's own client starts it again and says what is wrong
        _error = e


def _server_class():
    """Prefect's SubprocessASGIServer, its process in a session of its own: started while the batch
    works (not before), it must not take the terminal's Ctrl-C meant for the batch (uvicorn would
    print `Aborted!` mid-start). The batch still stops it: Prefect's exit handler, or the forced
    exit's (flows/batch.py). The command is Prefect 3.8.8's own (prefect is pinned)."""
    import subprocess
    import sys

    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class Server(SubprocessASGIServer):
        def _run_uvicorn_command(self) -> subprocess.Popen:
            return subprocess.Popen(
                args=[sys.executable, "-m", "uvicorn", "--app-dir", str(prefect.__module_path__.parent), "--factory",
                      "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
                      "--log-level", "error", "--lifespan", "on"],
                env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                     "PREFECT__SERVER_FINAL": "1", **get_current_settings().to_environment_variables(exclude_unset=True)},
                start_new_session=True)

    return Server


def start_in_background() -> None:
    """Start Prefect's temporary server in a thread (once per process); returns at once."""
    global _thread
    if _thread is not None:
        return
    # the thread sees this thread's Prefect settings (a test harness sets them in a context variable)
    ctx = contextvars.copy_context()
    _thread = threading.Thread(target=ctx.run, args=(_start,), name="sentinel-prefect-api", daemon=True)
    _thread.start()


def wait() -> None:
    """Return once the server started by `start_in_background` is up (or failed to start: the
    flow's client then tries again and fails as it would have). A no-op if none was started.
    A signal still interrupts the wait (the batch's handlers run in the main thread)."""
    global _error
    t = _thread
    if t is None:
        return
    while t.is_alive():
        t.join(0.2)
    if _error is not None:
        log.info("Prefect's temporary server did not start in the background (%s); the flow tries again",
                 type(_error).__name__)
        _error = None
