"""A real standalone Spark cluster on loopback, from the pyspark package alone: one master and one
worker (``$SPARK_HOME/bin/spark-class``), as a site would start them, for the parity tests.

The worker's Python processes run this interpreter (PYSPARK_PYTHON), so that the rules' Arrow UDFs
import pyarrow and rapidfuzz. Everything the cluster writes (logs, work dirs) is under ``root``.
"""
from __future__ import annotations

import json
import os
import signal
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


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
            return int(json.load(r).get("aliveworkers", 0))
    except OSError:
        return 0


@contextmanager
def standalone_cluster(root: Path, cores: int = 2, memory: str = "1500m", timeout: float = 120):
    """Yield the master URL (``spark://127.0.0.1:<port>``) once a worker has registered; stop both after."""
    import pyspark

    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "PYSPARK_PYTHON": sys.executable,
           "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(root / "logs"), "SPARK_WORKER_DIR": str(root / "work"),
           "SPARK_NO_DAEMONIZE": "1"}
    port, ui = _free_port(), _free_port()
    master = f"spark://127.0.0.1:{port}"
    cls = [str(home / "bin" / "spark-class")]
    root.mkdir(parents=True, exist_ok=True)
    procs = []
    try:
        for name, args in (("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                       "--port", str(port), "--webui-port", str(ui)]),
                           ("worker", ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                                       "--cores", str(cores), "--memory", memory, "--webui-port", str(_free_port()),
                                       "--work-dir", str(root / "work")])):
            log = open(root / f"{name}.log", "wb")
            procs.append(subprocess.Popen(cls + args, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          start_new_session=True))
            if name == "master":
                time.sleep(1)
        deadline = time.monotonic() + timeout
        while _alive_workers(ui) < 1:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"the Spark {('master', 'worker')[procs.index(p)]} exited with {p.returncode}: "
                                       f"see {root}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Spark worker registered with {master} within {timeout} s: see {root}")
            time.sleep(0.5)
        yield master
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
