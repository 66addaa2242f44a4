"""`sentinel serve` with no PREFECT_API_URL, the way an operator runs it: it starts and supervises a
local Prefect server on loopback, registers the nightly deployment, and its schedule really fires:
the scheduled run completes in the runner's own process, the warehouse gets the batch and the
lists are written. The UI talks to its own API and shows the stage logs; Ctrl-C stops serve and
everything it started."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import duckdb

from tests.test_nightly import FULL_ID
from tests.test_paths import as_in_a_terminal


def post(url: str, body: dict) -> list:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def alive(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/health", timeout=3)
        return True
    except OSError:
        return False


def processes_mentioning(marker: str, pids: bool = False) -> list:
    """Live processes whose command line or environment mentions `marker` (this test's own folder):
    serve's server, runner and flow-run processes all carry its PREFECT_HOME. Their command lines,
    or (`pids`) (pid, command line) pairs."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                text = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = f.read().decode(errors="replace")
        except OSError:
            continue
        if marker in text or marker in environ:
            found.append((int(entry.name), text) if pids else text)
    return found


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"^PPid:\s+(\d+)$", f.read(), re.M).group(1))
    except OSError:
        return None


def test_a_scheduled_night_runs_and_ctrl_c_stops_everything(small_city, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    wh, out = tmp_path / "site" / "w.duckdb", tmp_path / "share" / "out"
    # started from another folder than the checkout, as under systemd
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--cron", "* * * * *", "--input",
                             str(small_city), "--warehouse", str(wh), "--out", str(out)],
                            env={**env, "PYTHONPATH": os.getcwd()}, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=as_in_a_terminal)
    url, lines = None, []
    try:
        deadline = time.monotonic() + 240
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "serve exited early:\n" + "".join(lines)
            lines.append(line)
            m = re.search(r"local Prefect server at (http://127\.0\.0\.1:\d+/api)", line)
            url = m.group(1) if m else None
        assert url, "serve did not report its local server"
        # the UI served there asks its own API, not 127.0.0.1:4200
        assert get(url.removesuffix("/api") + "/ui-settings")["api_url"] == url
        deployments = []
        while not deployments and time.monotonic() < deadline:
            deployments = post(f"{url}/deployments/filter", {"deployments": {"name": {"any_": ["nightly"]}}})
            time.sleep(1)
        assert deployments, "the nightly deployment was not registered"
        schedule = deployments[0]["schedules"][0]["schedule"]
        assert (schedule["cron"], schedule["timezone"]) == ("* * * * *", "Asia/Shanghai")
        # wait for the schedule to fire (within the minute) and the run to finish
        runs, deadline = [], time.monotonic() + 240
        while time.monotonic() < deadline:
            runs = post(f"{url}/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [deployments[0]["id"]]}}})
            finished = [r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")]
            if finished:
                break
            time.sleep(2)
        assert finished, f"no scheduled run finished: {[(r['name'], r['state_type']) for r in runs]}"
        run = finished[0]
        assert run["state_type"] == "COMPLETED", run["state"]
        assert run["auto_scheduled"] is True  # fired by the scheduler, not triggered by hand
        # the stage logs are in the UI's API, with no ID number (the runner ships them every few seconds:
        # on a busy machine the last may arrive after the run's state)
        stages, deadline = ("household_registration:", "rules:", "scorer:", "warnings:", "lists:"), time.monotonic() + 30
        while True:
            logs = post(f"{url}/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}, "limit": 200})
            text = "\n".join(entry["message"] for entry in logs)
            if all(stage in text for stage in stages) or time.monotonic() > deadline:
                break
            time.sleep(1)
        for stage in stages:
            assert stage in text
        assert not FULL_ID.search(text)
        # the flow runs are forked from a process that has imported Prefect and the heavy modules that
        # start no thread (flows/prefect_api.py warm_flow_runs): one thread, so that nothing a forked
        # night needs is held by a thread that is not there
        # (a night's process, forked from it, has the same command line while it lives: the next minute's
        # run may have started by now; the forkserver is the one whose parent is not one of them)
        forked = {pid for pid, cmd in processes_mentioning(str(tmp_path / "prefect-home"), pids=True)
                  if "multiprocessing.forkserver" in cmd and "flows.warm" in cmd}
        forkservers = [pid for pid in forked if parent_of(pid) not in (*forked, None)]  # None: it has ended
        assert len(forkservers) == 1, forked
        with open(f"/proc/{forkservers[0]}/status") as f:
            assert re.search(r"^Threads:\s+1$", f.read(), re.M)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # the batch is in the warehouse, and the lists were written
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE outcome = 'succeeded'").fetchone()[0] >= 1
    assert (out / "warnings.csv").exists() and list((out / "lists").rglob("*.csv"))
    # nothing serve started is left running: its server, the runner's flow-run processes, the
    # forkserver they were forked from (it ends once serve and its last child have: within a second or two)
    deadline = time.monotonic() + 15
    while processes_mentioning(str(tmp_path / "prefect-home")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(url)
    assert not processes_mentioning(str(tmp_path / "prefect-home"))


def test_served_flow_runs_are_forked_from_a_warm_process():
    """`warm_flow_runs`: the process Prefect's runner asks for (a "spawn" one) comes from a
    forkserver that has imported the flow's code; the process runs, and its exit code comes back.
    A forkserver that died is started again for the next process, warm again (multiprocessing
    does it: serve need not be restarted)."""
    code = (
        "import multiprocessing, sys\n"
        "from flows import prefect_api\n"
        "prefect_api.warm_flow_runs()\n"
        "import prefect.flow_engine as engine\n"
        "ctx = engine.multiprocessing.get_context('spawn')\n"
        "assert ctx.get_start_method() == 'forkserver', ctx\n"
        "p = ctx.Process(target=sys.exit, args=(7,))\n"
        "p.start(); p.join()\n"
        "assert p.exitcode == 7, p.exitcode\n"
        "# should the forkserver die (killed, OOM), the next night gets a new one, which imports flows.warm again\n"
        "import multiprocessing.forkserver, os, signal, time\n"
        "pid = multiprocessing.forkserver._forkserver._forkserver_pid\n"
        "os.kill(pid, signal.SIGKILL)\n"
        "while os.path.exists(f'/proc/{pid}') and open(f'/proc/{pid}/stat').read().split()[2] != 'Z': time.sleep(0.05)\n"
        "p = ctx.Process(target=prefect_api._preloaded, args=(('flows.warm',),))\n"
        "p.start(); p.join()\n"
        "assert p.exitcode == 0, p.exitcode\n"
        "assert multiprocessing.forkserver._forkserver._forkserver_pid not in (None, pid)\n"
        "assert multiprocessing.get_context('spawn').get_start_method() == 'spawn'  # only Prefect's is changed\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
