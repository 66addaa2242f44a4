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
from pathlib import Path

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
        # the next night's process is already waiting, warm (flows/spare.py): serve's child, spawned
        # once this night had ended (the next minute's night may have begun in it by now)
        deadline = time.monotonic() + 60
        while not (spares := [pid for pid, cmd in processes_mentioning(str(tmp_path / "prefect-home"), pids=True)
                              if "flows.warm" in cmd and parent_of(pid) == proc.pid]) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert spares, "no spare process for the next night"
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
    # nothing serve started is left running: its server, the runner's flow-run processes, the spare
    # waiting for the next night (it ends once serve has: its pipe closes)
    deadline = time.monotonic() + 15
    while processes_mentioning(str(tmp_path / "prefect-home")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive(url)
    assert not processes_mentioning(str(tmp_path / "prefect-home"))


def test_serves_server_starts_where_the_warehouse_folder_does_not_exist_yet(tmp_path):
    """`serve --warehouse site/new/w.duckdb` on a new site: Prefect's home beside the warehouse
    (flows/cli.py) is made with its folders before Prefect's server starts; without it the server
    could not create its database there and exited."""
    home = tmp_path / "site" / "new" / ".prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    code = "from flows.serve import local_server\nwith local_server() as url:\n    print(url)\n"
    r = subprocess.run([sys.executable, "-c", code], env={**env, "PREFECT_HOME": str(home), "PYTHONPATH": os.getcwd()},
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith("http://127.0.0.1:") and (home / "prefect.db").is_file()


def test_served_nights_start_in_a_warm_spare_process():
    """`spare.warm_flow_runs`: the process Prefect's runner asks for (a "spawn" one) is the spare that
    was waiting, with the flow's code imported; it runs, and its exit code comes back. The next spare
    is spawned once that night has ended. A spare that died, or that imported code which has changed
    on disk since, is not used: that night is spawned cold, and the one after it has a spare again. A
    waiting spare ignores Ctrl-C, and ends without a word with serve."""
    code = (
        "import os, signal, sys, time\n"
        "from flows import spare\n"
        "spare.warm_flow_runs()\n"
        "assert spare.wait_ready(120)\n"
        "waiting = spare._spare.pid\n"
        "import prefect.flow_engine as engine\n"
        "ctx = engine.multiprocessing.get_context('spawn')\n"
        "p = ctx.Process(target=spare._imported, args=(('flows.nightly', 'sklearn.ensemble', 'polars'),))\n"
        "p.start()\n"
        "assert p.pid == waiting, (p.pid, waiting)\n"
        "p.join()\n"
        "assert p.exitcode == 0, p.exitcode  # warm: the night's modules were imported before it came\n"
        "assert spare.wait_ready(120)\n"
        "nxt = spare._spare.pid\n"
        "assert nxt != waiting\n"
        "os.kill(nxt, signal.SIGINT)  # Ctrl-C at the terminal reaches the waiting spare too: ignored\n"
        "p = ctx.Process(target=sys.exit, args=(7,))\n"
        "p.start(); p.join()\n"
        "assert (p.pid, p.exitcode) == (nxt, 7), (p.pid, nxt, p.exitcode)\n"
        "assert spare.wait_ready(120)\n"
        "dead = spare._spare.pid\n"
        "os.kill(dead, signal.SIGKILL)  # killed, out of memory: the next night runs cold\n"
        "while spare._spare.alive(): time.sleep(0.05)  # all its threads gone, not only the main one\n"
        "assert not spare.wait_ready(5)  # a dead spare is not warm (its readiness pipe closed as it died)\n"
        "p = ctx.Process(target=sys.exit, args=(5,))\n"
        "p.start(); p.join()\n"
        "assert p.pid != dead and p.exitcode == 5, (p.pid, p.exitcode)\n"
        "assert spare.wait_ready(120) and spare._spare.pid not in (dead, p.pid)  # and the next one is warm again\n"
        "stale = spare._spare.pid\n"
        "real = spare.code_stamp\n"
        "spare.code_stamp = lambda: ('upgraded',)  # the code on disk is no longer the code the spare imported\n"
        "p = ctx.Process(target=sys.exit, args=(4,))\n"
        "p.start(); p.join()\n"
        "spare.code_stamp = real\n"
        "assert p.pid != stale and p.exitcode == 4, (p.pid, p.exitcode)\n"
        "assert not os.path.exists(f'/proc/{stale}')  # ended and reaped\n"
        "assert spare.wait_ready(120)\n"
        "import multiprocessing\n"
        "assert multiprocessing.get_context('spawn').get_start_method() == 'spawn'  # only Prefect's is changed\n"
        "print(spare._spare.pid)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    last = int(r.stdout.strip())
    # the spare that was waiting when the process ended is ended with it
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{last}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{last}")
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


def test_no_spare_is_spawned_while_another_night_runs():
    """Two nights at once (a run started from the UI beside the scheduled one): the first takes the
    spare, the second is spawned cold; when the second ends while the first still runs, no spare is
    spawned (its imports would take the running night's cores); once the first ends, one is."""
    code = (
        "import sys, time\n"
        "from flows import spare\n"
        "spare.warm_flow_runs()\n"
        "assert spare.wait_ready(120)\n"
        "warm = spare._spare.pid\n"
        "import prefect.flow_engine as engine\n"
        "ctx = engine.multiprocessing.get_context('spawn')\n"
        "first = ctx.Process(target=time.sleep, args=(8,))\n"
        "first.start()\n"
        "assert first.pid == warm\n"
        "second = ctx.Process(target=sys.exit, args=(3,))\n"
        "second.start(); second.join()\n"
        "assert second.pid != warm and second.exitcode == 3\n"
        "time.sleep(1.5)\n"
        "assert spare._spare is None, 'a spare was spawned while the first night still ran'\n"
        "assert first.is_alive()\n"
        "first.join()\n"
        "assert spare.wait_ready(120) and spare._spare.pid not in (warm, second.pid)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_the_spares_code_stamp_covers_the_projects_packages():
    """flows/spare.py PACKAGES (whose modules' modification times tell a spare's code is stale) are
    the packages pyproject.toml installs."""
    import tomllib

    from flows.spare import PACKAGES

    with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
        include = tomllib.load(f)["tool"]["setuptools"]["packages"]["find"]["include"]
    assert sorted(PACKAGES) == sorted(name.rstrip("*") for name in include)


def test_a_spare_asks_the_api_version_before_its_night(prefect_harness):
    """flows/warm.py `api_version_checked`: Prefect's once-per-process question to the API server
    (its version) is answered while the spare waits, and cached for the night's client; a server that
    cannot be reached leaves the question to the night, without failing the spare's warm-up."""
    from prefect._internal.version_checking import (
        _api_version_check_key, _clear_api_version_check_cache, _is_api_version_check_cached)
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import warm

    def key() -> str:
        client = get_client(sync_client=True)
        return _api_version_check_key(str(client.api_url), client.client_version())

    _clear_api_version_check_cache()
    assert not _is_api_version_check_cached(key())
    warm.api_version_checked()
    assert _is_api_version_check_cached(key())

    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):  # nothing listens on port 9
        warm.api_version_checked()
        assert not _is_api_version_check_cached(key())



def test_a_spare_without_an_api_url_asks_nothing(tmp_path):
    """With no PREFECT_API_URL Prefect's client would start a temporary server of its own (15 s) to be
    asked its version: `api_version_checked` asks nothing then."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | {
        "PREFECT_HOME": str(tmp_path / "prefect-home")}
    code = ("import time\nimport prefect.client.orchestration\nfrom flows import warm\n"
            "t0 = time.perf_counter()\nwarm.api_version_checked()\nprint(time.perf_counter() - t0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-2000:]
    assert float(r.stdout.strip().splitlines()[-1]) < 2.0, r.stdout
