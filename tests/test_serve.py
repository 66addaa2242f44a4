"""`sentinel serve` with no PREFECT_API_URL: it starts and supervises a local Prefect server on
loopback, registers the nightly deployment with its cron schedule, and stops the server when
it is stopped (issue 7)."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request


def post(url: str, body: dict) -> list:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def test_serve_schedules_on_a_local_server(small_city, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--cron", "0 2 * * *", "--input",
                             str(small_city), "--warehouse", str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "out")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "serve exited early"
            m = re.search(r"local Prefect server at (http://127\.0\.0\.1:\d+/api)", line)
            url = m.group(1) if m else None
        assert url, "serve did not report its local server"
        deployments = []
        while not deployments and time.monotonic() < deadline:
            deployments = post(f"{url}/deployments/filter", {"deployments": {"name": {"any_": ["nightly"]}}})
            time.sleep(1)
        assert deployments, "the nightly deployment was not registered"
        schedules = deployments[0]["schedules"]
        assert schedules[0]["schedule"]["cron"] == "0 2 * * *"
        assert schedules[0]["schedule"]["timezone"] == "Asia/Shanghai"
        assert deployments[0]["parameters"]["input_dir"] == str(small_city)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    # the supervised server is gone with it
    if url:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=3)
            alive = True
        except OSError:
            alive = False
        assert not alive
