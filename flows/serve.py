"""`sentinel serve`: run the nightly flow on a cron schedule for as long as it is left running.

Prefect schedules only against a real API server. Where PREFECT_API_URL is set (a site with a
Prefect server), serve registers the deployment there. Where it is not, serve starts a local
server on loopback itself (`prefect server start --host 127.0.0.1`), supervises it, and stops
it on exit, so the embedded default still needs nothing installed or started by hand. That
server's UI is told where its own API is (PREFECT_UI_API_URL): without it the UI asks
127.0.0.1:4200, another server or none. The server runs in a session of its own, so that a
Ctrl-C at the terminal reaches serve, which stops it in order.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_server(timeout: float = 180.0, port: int = 0):
    """A Prefect server on loopback for this process; yields its API URL."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
           "PREFECT_UI_API_URL": url, "PREFECT_SERVER_UI_API_URL": url}
    env.pop("PREFECT_API_URL", None)
    # Prefect's home (sentinel's default: beside the warehouse, whose folder a first night would
    # make): its database cannot be created in a folder that does not exist
    home = Path(env.get("PREFECT_HOME", "~/.prefect")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "sentinel-serve-server.log"  # what the server says, named if it fails to start
    prefect = Path(sys.executable).with_name("prefect")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the local Prefect server exited with status {proc.returncode}; what it "
                                   f"said is in {log}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Prefect server did not become healthy within {timeout:.0f} s")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def serve(cron: str, input_dir: Path, warehouse: Path, out_dir: Path, timezone: str = "Asia/Shanghai",
          name: str = "nightly", xlsx: bool = False, mask_ids: bool = False, ui_port: int = 0,
          engine: str = "duckdb", spark_master: str | None = None, stage_uri: str | None = None) -> None:
    from flows.nightly import check_arguments, check_engine

    input_dir, warehouse, out_dir = (Path(p).absolute() for p in (input_dir, warehouse, out_dir))
    check_arguments(input_dir, warehouse, out_dir)  # a typo is said now, not at 02:00
    check_engine(engine, stage_uri, input_dir, out_dir, spark_master)
    params = {"input_dir": str(input_dir), "warehouse": str(warehouse), "out_dir": str(out_dir),
              "xlsx": xlsx, "mask_ids": mask_ids, "timezone": timezone,  # the night is dated in the cron's zone
              "engine": engine, "spark_master": spark_master, "stage_uri": stage_uri}

    def _serve():
        from prefect.schedules import Cron

        from flows import spare
        from flows.nightly import nightly

        spare.warm_flow_runs()  # each night starts in a warm process (flows/spare.py)
        nightly.serve(name=name, schedule=Cron(cron, timezone=timezone), parameters=params, pause_on_shutdown=False)

    if os.environ.get("PREFECT_API_URL"):
        _serve()
        return
    with local_server(port=ui_port) as url:
        os.environ["PREFECT_API_URL"] = url
        print(f"serving the nightly batch on '{cron}' ({timezone}) with a local Prefect server at {url}; "
              f"its UI: {url.removesuffix('/api')}", flush=True)
        _serve()
