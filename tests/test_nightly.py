"""The nightly flow end to end (issue 7): outputs that conform, safety (refusal, failing stage,
kill -9, a second batch), idempotence, no ID number in any log line, and three nights of a
warning's lifecycle."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from data_contracts import warehouse
from flows.batch import batch_lock
from flows.cli import main
from tests.conftest import AS_OF, PAYMENT_HEADER, payment, snapshot_of, write_csv

CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_outputs.py"
FULL_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")


def q(wh: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def copy_warehouse(src: Path, dst_dir: Path) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    shutil.copyfile(src, dst)
    return dst


def test_run_conforms_and_summarises(demo_run):
    wh, out = demo_run["warehouse"], demo_run["out"]
    if CHECKER.exists():  # the contract's own checker, where ../shared is beside the checkout (CI)
        r = subprocess.run([sys.executable, str(CHECKER), "--warehouse", str(wh), "--out", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout
    assert q(wh, "SELECT outcome, warnings_new > 0 FROM runs") == [("succeeded", True)]
    md = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Rules" in md and "## Warnings by category" in md and "deceased_paid" in md
    # the outcome audit ran on the batch's working copy (a read-only cursor of it), not its fallback
    assert "group rates checked" in md and "audit failed" not in md
    assert not FULL_ID.search(md)
    assert list((out / "lists").glob("*.xlsx"))
    # each stage's seconds and the process's peak memory while it ran (flows/meter.py)
    stages = dict((m[1], (float(m[2]), int(m[3]))) for m in
                  re.finditer(r"^\| (\w+) \| ([\d.]+) \| (\d+) \|$", md.split("## Stages")[1], re.M))
    assert list(stages) == ["ingest", "rules", "scorer", "warnings", "lists"], md
    assert all(50 < peak < 8192 for _, peak in stages.values()), stages


def test_summary_artifact_has_no_personal_data(demo_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-summary"])))
    assert arts, "the flow publishes its summary as a Prefect artifact"
    body = arts[-1].data
    assert "Warnings by category" in body and not FULL_ID.search(body)


def test_same_batch_again_gives_same_warnings(demo_run, tmp_path):
    from flows.nightly import run_batch

    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "again")
    before = q(wh, "SELECT warning_id, category, status, amount_at_risk FROM warnings ORDER BY warning_id")
    run_batch(demo_run["landing"], wh, tmp_path / "again" / "out", AS_OF)
    after = q(wh, "SELECT warning_id, category, status, amount_at_risk FROM warnings ORDER BY warning_id")
    assert after == before


def test_a_second_batch_is_refused_while_one_runs(demo_run, tmp_path, capsys):
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "busy")
    before = snapshot_of(wh)
    with batch_lock(wh):
        rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                   "--as-of", "2026-11-02"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert str(wh) in err and "another batch is running" in err
    assert snapshot_of(wh) == before


def test_a_failing_stage_leaves_warehouse_and_lists_as_they_were(demo_run, tmp_path, monkeypatch, capsys):
    import flows.nightly as nightly

    root = tmp_path / "fail"
    wh = copy_warehouse(demo_run["warehouse"], root)
    out = root / "out"
    shutil.copytree(demo_run["out"], out)
    before, lists_before = snapshot_of(wh), sorted(p.name for p in out.rglob("*"))

    def boom(*a, **k):
        raise RuntimeError("warnings stage exploded")

    monkeypatch.setattr(nightly.warnings_mod, "update_warnings", boom)
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(out),
               "--as-of", "2026-11-02"])
    assert rc == 1
    assert "warnings stage exploded" in capsys.readouterr().err
    assert snapshot_of(wh) == before
    assert sorted(p.name for p in out.rglob("*")) == lists_before
    assert not list(root.glob(".*.batch*"))
    assert not warehouse._held  # the failed batch's working copy is no longer held open


def test_the_stages_share_the_working_copy_held_open_until_the_commit(demo_run, tmp_path, monkeypatch):
    """Every stage's connection is one more to the working copy the batch holds open
    (data_contracts.warehouse.hold_open); the commit checkpoints and closes it, and the committed
    warehouse opens read-only at once."""
    import flows.nightly as nightly

    root = tmp_path / "held"
    wh = copy_warehouse(demo_run["warehouse"], root)
    seen = []
    real = nightly.lists_mod.write_lists

    def lists_seeing_the_hold(con, *a, **k):
        seen.append(sorted(warehouse._held))
        return real(con, *a, **k)

    monkeypatch.setattr(nightly.lists_mod, "write_lists", lists_seeing_the_hold)
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(root / "out"),
               "--as-of", "2026-11-02"])
    assert rc == 0
    assert seen == [[str(root / f".{wh.name}.batch")]]
    assert not warehouse._held and not list(root.glob(".*.batch*"))
    # while held, the working copy is reached through warehouse.connect only: a plain connect is refused
    work = root / "held-alone.duckdb"
    warehouse.hold_open(work)
    try:
        with pytest.raises(duckdb.ConnectionException):
            duckdb.connect(str(work))
        with warehouse.connect(work) as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS a")
        # read_only (the summary's, the audit's): reads and TEMP objects, no write to the copy
        with warehouse.connect(work, read_only=True) as con:
            con.execute("CREATE TEMP TABLE scratch AS SELECT a + 1 AS b FROM t")
            assert con.execute("SELECT b FROM scratch").fetchall() == [(2,)]
            with pytest.raises(duckdb.TransactionException, match="read-only"):
                con.execute("INSERT INTO t VALUES (2)")
        with warehouse.connect(work) as con:
            assert con.execute("SELECT a FROM t").fetchall() == [(1,)]
    finally:
        warehouse.let_go(work)
    assert q(wh, "SELECT count(*) FROM runs WHERE outcome = 'succeeded'")[0][0] == 2


def test_stages_run_under_the_duckdb_memory_limit(demo_run, tmp_path, monkeypatch, capsys):
    """$SENTINEL_DUCKDB_MEMORY_LIMIT reaches every stage's connection; a value DuckDB cannot read is
    refused before anything is written, naming the variable."""
    import flows.nightly as nightly

    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "limit")
    before = snapshot_of(wh)
    args = ["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
            "--as-of", "2026-11-02"]
    monkeypatch.setenv("SENTINEL_DUCKDB_MEMORY_LIMIT", "lots")
    assert main(args) == 2
    assert "SENTINEL_DUCKDB_MEMORY_LIMIT" in capsys.readouterr().err
    assert snapshot_of(wh) == before

    seen = []
    real = nightly.warnings_mod.update_warnings

    def update_warnings(con, *a, **k):
        seen.append(con.execute("SELECT current_setting('memory_limit')").fetchone()[0])
        return real(con, *a, **k)

    monkeypatch.setattr(nightly.warnings_mod, "update_warnings", update_warnings)
    monkeypatch.setenv("SENTINEL_DUCKDB_MEMORY_LIMIT", "1GB")
    assert main(args) == 0
    assert seen == ["953.6 MiB"]


def test_a_refused_file_leaves_the_warehouse_as_it_was(demo_run, tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(demo_run["landing"], landing)
    bad = write_csv(landing / "payments-late.csv", [payment("PX1", "110105194912310021")],
                    [h for h in PAYMENT_HEADER if h != "amount"])
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "refused")
    before = snapshot_of(wh)
    rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(tmp_path / "o"), "--as-of", "2026-11-02"])
    assert rc == 2
    err = capsys.readouterr().err
    assert bad.name in err and "amount" in err
    assert snapshot_of(wh) == before


def test_kill_9_in_the_middle_leaves_the_warehouse_as_it_was(demo_run, tmp_path):
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "killed")
    before = snapshot_of(wh)
    work = wh.with_name(f".{wh.name}.batch")
    env = {**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "run", "--input", str(demo_run["landing"]),
                             "--warehouse", str(wh), "--out", str(tmp_path / "o"), "--as-of", "2026-11-02"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not work.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the batch: the working copy is being written
    assert proc.poll() is None, "the batch ended before it could be killed"
    # kill -9 the batch and everything it started (Prefect's temporary server too, as an operator's
    # `kill -9 -<pgid>` would; a bare kill -9 of the batch alone would leave that server running)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert snapshot_of(wh) == before
    # the next batch runs normally and cleans what the killed one left
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
               "--as-of", "2026-11-02"])
    assert rc == 0 and not work.exists()
    assert q(wh, "SELECT count(*) FROM runs WHERE outcome = 'succeeded'")[0][0] == 2


def test_no_full_id_number_in_any_log_line(small_city, tmp_path, prefect_harness):
    env = {**os.environ, "PREFECT_LOGGING_LEVEL": "DEBUG"}
    r = subprocess.run([sys.executable, "-m", "flows.cli", "-v", "run", "--input", str(small_city), "--warehouse",
                        str(tmp_path / "w.duckdb"), "--out", str(tmp_path / "o"), "--as-of", AS_OF.isoformat()],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    logs = r.stdout + r.stderr
    assert "ingest" in logs and "warnings" in logs  # the logs were captured
    assert not FULL_ID.findall(logs)


def test_a_stage_error_carrying_an_id_number_is_masked(demo_run, tmp_path, monkeypatch, capsys, caplog):
    import flows.nightly as nightly

    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "masked")
    secret = "11010519491231002X"

    def boom(*a, **k):
        raise ValueError(f"Conversion Error: could not convert '{secret}' to DATE")

    monkeypatch.setattr(nightly.warnings_mod, "update_warnings", boom)
    rc = main(["-v", "run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out",
               str(tmp_path / "o"), "--as-of", "2026-11-02"])
    assert rc == 1
    captured = capsys.readouterr()
    everything = captured.out + captured.err + caplog.text
    assert "could not convert" in captured.err and "110105********002X" in captured.err
    assert secret not in everything


def test_feedback_waits_for_no_batch(demo_run, tmp_path, capsys):
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "fb")
    returned = tmp_path / "r.csv"
    returned.write_bytes("预警编号,核查结论,核查说明\n".encode("gb18030"))
    with batch_lock(wh):
        rc = main(["feedback", "--warehouse", str(wh), str(returned)])
    assert rc == 2 and "another batch is running" in capsys.readouterr().err


def test_what_a_killed_batch_spilled_is_removed_by_the_next(tmp_path):
    """DuckDB spills beyond its memory limit to a folder beside the batch's working copy; a batch
    killed while spilling leaves it (personal data, gigabytes in a big city): the next batch's
    working copy removes it, and leaves nothing of its own."""
    from flows.batch import WorkingCopy

    wh = tmp_path / "w.duckdb"
    with duckdb.connect(str(wh)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(2000000)")
    spilled = tmp_path / ".w.duckdb.batch.tmp"
    spiller = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2]); con = duckdb.connect(sys.argv[2]); "
        "con.execute(\"SET memory_limit='30MB'\"); con.execute('SET threads=1'); "
        "con.execute('CREATE TABLE u AS SELECT * FROM t ORDER BY s, i')"), str(wh), str(tmp_path / ".w.duckdb.batch")])
    deadline = time.monotonic() + 60
    while not (spilled.is_dir() and any(spilled.iterdir())) and spiller.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    spiller.kill()
    spiller.wait()
    assert spilled.is_dir() and any(spilled.iterdir()), "DuckDB did not spill: the test shows nothing"
    with WorkingCopy(wh) as work:
        assert not spilled.exists()
        assert work.path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.duckdb"]


def test_a_flow_run_sends_heartbeats_without_waiting_for_their_thread_at_its_end(prefect_harness):
    """On a long-lived server a flow run's heartbeat thread is stopped at the end of the run, not
    joined (flows/prefect_api.py `heartbeats_unjoined`): the run returns while the thread finishes
    its last one-second sleep, and the thread then ends on its own."""
    import threading

    import prefect.flow_engine
    from prefect import flow
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    import flows.nightly  # noqa: F401 -- applies the patch, as every batch's process does
    assert getattr(prefect.flow_engine._send_heartbeats, "unjoined", False)

    def heartbeat_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate()  # Prefect's thread runs heartbeat_loop in a context copy
                if any(getattr(a, "__name__", "") == "heartbeat_loop" for a in getattr(t, "_args", ()))]

    @flow(name="heartbeats")
    def beating() -> int:
        assert heartbeat_threads(), "the run sends heartbeats"
        return 1

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        assert beating() == 1
    left = heartbeat_threads()
    assert left and all(t.is_alive() for t in left), "the run waited for its heartbeat thread"
    for t in left:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in left)
