"""The operator's paths, taken the way an operator takes them (issue 11): the command line as typed,
a second batch while one runs, Ctrl-C and systemd's SIGTERM at several points of a batch, the
output folder a share must read, Prefect's state kept out of the home directory, the logs the
Prefect UI shows."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from flows.cli import build_parser, main
from tests.conftest import AS_OF, snapshot_of
from tests.test_nightly import FULL_ID, copy_warehouse, q

SENTINEL = [sys.executable, "-m", "flows.cli"]


def as_in_a_terminal():
    """Ctrl-C reaches a command typed at a terminal (a suite run in the background ignores SIGINT,
    and its children would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def own_processes_of(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (a test's own temporary path)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in text and str(os.getpid()) != cmdline.parent.name:
            found.append(text)
    return found


# ----------------------------------------------------------------------------- the command line

def test_every_option_has_help_and_verbose_goes_anywhere():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"sentinel {name} {action.option_strings or action.dest} has no help"
    for argv in (["-v", "rules"], ["rules", "-v"], ["rules", "--verbose"]):
        assert parser.parse_args(argv).verbose is True
    assert parser.parse_args(["rules"]).verbose is False


def test_a_mistyped_argument_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", "--cron", "0 2 * *", "--input", "x", "--warehouse", "w", "--out", "o"])
    assert e.value.code == 2
    assert "not a cron expression" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["run", "--input", "x", "--warehouse", "w", "--out", "o", "--as-of", "2026-13-01"])
    assert e.value.code == 2
    capsys.readouterr()
    # a misspelt option is named, with the one meant (argparse said only that --out was missing)
    for wrong, meant in (("--ouput", "; did you mean --out?"), ("--warehose=w", "; did you mean --warehouse?"),
                         ("--bogus", "")):
        with pytest.raises(SystemExit) as e:
            main(["run", "--input", "x", wrong, "o"] + ([] if "warehose" in wrong else ["--warehouse", "w"]))
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.value.code == 2 and err.endswith(f"unknown option {wrong.split('=')[0]}{meant}"), err
    # a misspelt command or choice likewise
    for args, said in ((["rnu"], "invalid choice: 'rnu'; did you mean 'run'?"),
                       (["run", "--engine", "sprak"], "invalid choice: 'sprak'; did you mean 'spark'?")):
        with pytest.raises(SystemExit) as e:
            main(args)
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert e.value.code == 2 and said in err, err
    # abbreviations argparse takes are still taken
    assert build_parser().parse_args(["run", "--input", "x", "--warehouse", "w", "--out", "o", "--mask-id"]).mask_ids


# ----------------------------------------------------------------------------- a second batch

@pytest.mark.timed
def test_a_second_batch_is_refused_at_once_with_one_line(demo_run, tmp_path):
    """The first batch is a process holding the warehouse's lock exactly as a batch does
    (flows.batch.batch_lock); a whole first batch would only add a Prefect server start to the suite."""
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "busy")
    before = snapshot_of(wh)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom flows.batch import batch_lock\n"
                               f"with batch_lock({str(wh)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        second = subprocess.run([*SENTINEL, "run", "--input", str(demo_run["landing"]), "--warehouse", str(wh),
                                 "--out", str(tmp_path / "o2"), "--as-of", "2026-11-02"],
                                capture_output=True, text=True, timeout=60)
        seconds = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2
    assert second.stdout == "" and len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"another batch is running against this warehouse (pid {holder.pid})" in second.stderr
    # refused before Prefect starts (about 1 s: Python and DuckDB starting); a server start takes 10-20 s
    assert seconds < 2.0, f"refusal took {seconds:.1f} s"
    print(f"second batch refused in {seconds:.2f} s")
    assert snapshot_of(wh) == before and not (tmp_path / "o2").exists()


def test_a_batch_of_another_warehouse_writing_the_same_out_is_refused(demo_run, tmp_path):
    """Two warehouses' batches given one --out staged their lists in one folder and swapped in each
    other's: lists of no committed batch handed out, or a batch's lists lost while it said where they
    were (a newcomer's trial). The first batch is a process holding the folder's lock as a batch does."""
    out = tmp_path / "lists"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom flows.batch import output_lock\n"
                               f"with output_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)\n"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run([*SENTINEL, "run", "--input", str(demo_run["landing"]),
                                 "--warehouse", str(tmp_path / "other.duckdb"), "--out", str(out),
                                 "--as-of", "2026-11-02"], capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2 and second.stdout == "", second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"another batch is writing its lists into this folder (pid {holder.pid})" in second.stderr
    assert str(out) in second.stderr
    assert not (tmp_path / "other.duckdb").exists() and not out.exists()


# ----------------------------------------------------------------------------- Ctrl-C and SIGTERM

def _interrupt_at(monkeypatch, target, attr: str, signum: int):
    real = getattr(target, attr)

    def wrapped(*a, **k):
        os.kill(os.getpid(), signum)  # the operator's Ctrl-C (or systemd's SIGTERM), arriving here
        time.sleep(0.5)  # the handler runs at the next bytecode; this makes sure it has
        return real(*a, **k)

    monkeypatch.setattr(target, attr, wrapped)


@pytest.mark.parametrize("stage,signum", [("ingest_into", signal.SIGINT), ("run_rules", signal.SIGTERM),
                                          ("score", signal.SIGINT), ("write_lists", signal.SIGTERM)])
def test_an_interrupt_before_the_commit_point_changes_nothing(demo_run, tmp_path, monkeypatch, capsys, stage,
                                                             signum):
    import flows.nightly as nightly

    target = {"ingest_into": nightly.ingest_mod, "run_rules": nightly, "score": nightly.scorer,
              "write_lists": nightly.lists_mod}[stage]
    _interrupt_at(monkeypatch, target, stage, signum)
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    out = tmp_path / "out"
    before = snapshot_of(wh)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
    try:
        rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(out),
                   "--as-of", "2026-11-02"])
        assert signal.getsignal(signum) in (signal.default_int_handler, signal.SIG_DFL)  # handlers given back
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert rc == 128 + signum
    assert "before the commit point" in capsys.readouterr().err
    assert snapshot_of(wh) == before
    assert not out.exists() and not list(wh.parent.glob(".*.batch*")) and not list(tmp_path.glob(".*.batch*"))


def test_an_interrupt_at_the_commit_point_lets_the_batch_finish(demo_run, tmp_path, monkeypatch, capsys):
    from flows import batch

    _interrupt_at(monkeypatch, batch.WorkingCopy, "commit", signal.SIGINT)
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                   "--as-of", "2026-11-02"])
    finally:
        signal.signal(signal.SIGINT, handler)
    captured = capsys.readouterr()
    assert rc == 0
    assert "SIGINT received at the commit point: finishing the batch first" in captured.err
    assert "the batch was finished first" in captured.out
    assert q(wh, "SELECT max(batch_id), count(*) FILTER (WHERE outcome = 'succeeded') FROM runs") == [(2, 2)]
    assert (tmp_path / "o" / "summary.md").exists()


def test_ctrl_c_at_the_terminal_stops_the_batch_and_everything_it_started(demo_run, tmp_path):
    """SIGINT to the whole process group, as a terminal sends it: Prefect's temporary server gets it
    too, and the batch must not hang for minutes retrying to report to it."""
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    before = snapshot_of(wh)
    work = wh.with_name(f".{wh.name}.batch")
    proc = subprocess.Popen([*SENTINEL, "run", "--input", str(demo_run["landing"]), "--warehouse", str(wh),
                             "--out", str(tmp_path / "o"), "--as-of", "2026-11-02"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=as_in_a_terminal)
    deadline = time.monotonic() + 120
    while not work.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the batch ended before it could be interrupted"
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    seconds = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert seconds < 20, f"took {seconds:.0f} s to stop"
    assert err.strip().splitlines()[-1].startswith("sentinel: interrupted by SIGINT before the commit point")
    assert len(err.strip().splitlines()) == 1, err
    time.sleep(1)
    assert snapshot_of(wh) == before and not work.exists() and not (tmp_path / "o").exists()
    assert not own_processes_of(str(wh)), "a process of the batch is still running"
    # nothing of it is left in its process group either (Prefect's temporary server, which got the
    # Ctrl-C too, takes a moment to shut down)
    deadline, alive = time.monotonic() + 15, True
    while alive and time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
            time.sleep(0.5)
        except ProcessLookupError:
            alive = False
    assert not alive, own_processes_of("uvicorn")


# ----------------------------------------------------------------------------- outputs, state, logs

def test_outputs_are_readable_by_the_group_and_state_stays_beside_the_warehouse(small_city, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(HOME=str(home), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120")
    wh, out = tmp_path / "site" / "w.duckdb", tmp_path / "share" / "out"
    r = subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", *SENTINEL, "run", "--input", str(small_city),
                        "--warehouse", str(wh), "--out", str(out), "--as-of", AS_OF.isoformat()],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and len(r.stdout.splitlines()) == 1  # one line at the terminal
    for d in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        assert d.stat().st_mode & 0o755 == 0o755, f"{d} is {oct(d.stat().st_mode)}"
    for f in (p for p in out.rglob("*") if p.is_file()):
        assert f.stat().st_mode & 0o044 == 0o044, f"{f} is {oct(f.stat().st_mode)}"
    assert not (home / ".prefect").exists()
    db = wh.parent / ".prefect" / "prefect.db"
    assert db.exists(), "Prefect's state is not beside the warehouse"
    # the run's stage logs reached Prefect's API (what its UI shows), though the terminal showed none
    with sqlite3.connect(db) as con:
        messages = [m for (m,) in con.execute("SELECT message FROM log")]
    text = "\n".join(messages)
    for stage in ("household_registration:", "rules:", "scorer:", "warnings:", "lists:"):
        assert stage in text, f"no {stage} log line in the UI's database"
    assert not FULL_ID.search(text)


@pytest.mark.timed
def test_out_never_names_what_the_batch_did_not_write(demo_run, tmp_path, capsys):
    landing = demo_run["landing"]
    site = tmp_path / "site"
    wh = copy_warehouse(demo_run["warehouse"], site)
    (site / "notes.txt").write_text("the operator's own file")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.docx").write_text("someone's report")
    cases = {
        str(site): "contains the warehouse",  # the folder holding the warehouse
        str(landing): "is the landing directory",
        str(landing.parent): "contains the landing directory",
        str(a_file): "is not a directory",
        str(other): "is not empty",
        ".": "contains",  # the current directory holds the warehouse's folder here
    }
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for out, said in cases.items():
            t0 = time.monotonic()
            rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", out, "--as-of", "2026-11-02"])
            err = capsys.readouterr().err.strip()
            assert rc == 2 and said in err and len(err.splitlines()) == 1, (out, err)
            assert time.monotonic() - t0 < 5
    finally:
        os.chdir(cwd)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in landing.iterdir()) == sorted(p.name for p in demo_run["landing"].iterdir())


def test_generate_and_demo_refuse_a_folder_that_is_not_theirs(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert main(["generate", "--persons", "2000", "--out", str(mine)]) == 2
    assert "not a city generated before" in capsys.readouterr().err
    assert main(["demo", "--dir", str(mine)]) == 2
    assert "holds no earlier demo" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "years of work" and len(list(mine.iterdir())) == 1
    # a folder with somebody's own warehouse.duckdb in it is not a demo either
    with duckdb.connect(str(mine / "warehouse.duckdb")) as con:
        con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    assert main(["demo", "--dir", str(mine), "--persons", "2000"]) == 2
    with duckdb.connect(str(mine / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT answer FROM precious").fetchall() == [(42,)]
    # a city generated before is replaced
    city = tmp_path / "city"
    assert main(["generate", "--persons", "2000", "--seed", "3", "--out", str(city)]) == 0
    assert main(["generate", "--persons", "2000", "--seed", "4", "--out", str(city)]) == 0
    capsys.readouterr()


# ----------------------------------------------------------------------------- batch dates

def test_as_of_before_the_last_batch_needs_replay_and_keeps_history_consistent(demo_run, tmp_path, capsys):
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    landing = demo_run["landing"]
    assert main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                 "--as-of", "2026-11-03"]) == 0
    capsys.readouterr()
    before = snapshot_of(wh)
    for as_of, said in (("2026-11-02", "before this warehouse's last batch (2026-11-03)"),
                        ("2062-11-02", "days after today")):
        rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                   "--as-of", as_of])
        err = capsys.readouterr().err
        assert rc == 2 and said in err and "--replay" in err
    assert snapshot_of(wh) == before
    assert main(["run", "--replay", "--input", str(landing), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                 "--as-of", "2026-11-02"]) == 0
    assert q(wh, "SELECT count(*) FROM warnings WHERE last_seen < first_seen")[0][0] == 0
    assert q(wh, "SELECT min(first_seen), max(last_seen) FROM warnings") == [(AS_OF, AS_OF.replace(day=3))]
    assert q(wh, "SELECT list(as_of ORDER BY batch_id)::VARCHAR FROM runs")[0][0] == \
        "[2026-11-01, 2026-11-03, 2026-11-02]"


# ----------------------------------------------------------------------------- the warehouse path

def test_a_warehouse_path_the_batch_cannot_use_is_one_sentence(demo_run, tmp_path, capsys, monkeypatch):
    landing = demo_run["landing"]
    not_duckdb = tmp_path / "w.duckdb"
    not_duckdb.write_text("id,name\n")
    a_dir = tmp_path / "wdir"
    a_dir.mkdir()
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    # a warehouse moved to a bigger volume and reached through a link: the commit's rename replaced the
    # link with the new file, the real warehouse stopped at its last night, and a second name took a
    # second lock (a newcomer's trial)
    linked = tmp_path / "linked.duckdb"
    linked.symlink_to(demo_run["warehouse"])
    cases = [(not_duckdb, "is not a DuckDB file"), (a_dir, "is a directory"), (ro / "w.duckdb", "is not writable"),
             (linked, f"is a symlink; give the file it points to ({Path(demo_run['warehouse']).resolve()})")]
    if os.geteuid() == 0:  # root writes anywhere: a read-only folder cannot be made here
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != ro)
    for wh, said in cases:
        rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
                   "--as-of", "2026-11-02"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and said in err and str(wh if said != "is not writable" else ro) in err, err
        assert len(err.splitlines()) == 1
    assert not_duckdb.read_text() == "id,name\n"
    assert linked.is_symlink()


def test_a_full_disk_leaves_nothing_partial_behind(demo_run, tmp_path, capsys, monkeypatch):
    import errno

    from flows import batch

    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    before = snapshot_of(wh)

    def full(src, dst, *a, **k):  # the copy gets half way, then the device is full
        Path(dst).write_bytes(Path(src).read_bytes()[: 1 << 16])
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(batch.shutil, "copyfile", full)
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
               "--as-of", "2026-11-02"])
    err = capsys.readouterr().err
    assert rc == 2 and "no space left" in err and str(wh.parent) in err
    assert snapshot_of(wh) == before and not list(wh.parent.glob(".*.batch*"))


def test_a_disk_that_fills_while_a_stage_writes_leaves_nothing_behind(demo_run, tmp_path, capsys, monkeypatch):
    import flows.nightly as nightly

    def full(con, *a, **k):
        raise duckdb.IOException("IO Error: Could not write file \"x.batch\": No space left on device")

    monkeypatch.setattr(nightly.warnings_mod, "update_warnings", full)
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    before = snapshot_of(wh)
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
               "--as-of", "2026-11-02"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "no space left on the device" in err and len(err.splitlines()) == 1
    assert snapshot_of(wh) == before and not list(tmp_path.rglob(".*.batch*")) and not (tmp_path / "o").exists()


@pytest.mark.timed
def test_a_header_missing_a_column_is_refused_before_prefect_starts(minimal_landing, tmp_path):
    from tests.conftest import PAYMENT_HEADER, payment, write_csv

    write_csv(minimal_landing / "payments-late.csv", [payment("PX1", "110105194912310021")],
              [h for h in PAYMENT_HEADER if h != "amount"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    t0 = time.monotonic()
    r = subprocess.run([*SENTINEL, "run", "--input", str(minimal_landing), "--warehouse", str(tmp_path / "w.duckdb"),
                        "--out", str(tmp_path / "o"), "--as-of", AS_OF.isoformat()], env=env, capture_output=True,
                       text=True, timeout=120)
    seconds = time.monotonic() - t0
    assert r.returncode == 2 and r.stderr.strip() == "sentinel: payments-late.csv: missing required column amount " \
                                                     "(发放金额)"
    assert seconds < 3.0, f"refusal took {seconds:.1f} s"
    assert not (tmp_path / "prefect-home").exists(), "Prefect was started for a refused landing directory"
    assert not (tmp_path / "w.duckdb").exists() and not (tmp_path / "o").exists()


def test_out_that_is_a_symlink_or_holds_others_files_is_refused(demo_run, tmp_path, capsys):
    landing = demo_run["landing"]
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    share = tmp_path / "share"
    share.mkdir()
    link = tmp_path / "out-link"
    link.symlink_to(share)
    rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(link), "--as-of", "2026-11-02"])
    assert rc == 2 and "is a symlink" in capsys.readouterr().err and link.is_symlink()
    # a night's outputs; then a verifier saves a filled list and a note there
    out = share / "out"
    assert main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(out), "--as-of", "2026-11-02"]) == 0
    capsys.readouterr()
    listed = next(out.rglob("*.xlsx"))
    (listed.parent / ".~lock.x.xlsx#").write_text("LibreOffice's lock of an open list")  # transient: not a refusal
    assert main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(out), "--as-of", "2026-11-02"]) == 0
    capsys.readouterr()
    note = out / "lists" / "核查记录.docx"
    note.write_text("a verifier's notes")
    listed = next(out.rglob("*.xlsx"))
    time.sleep(0.01)
    listed.write_bytes(listed.read_bytes() + b"\0")  # saved over by a verifier
    rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(out), "--as-of", "2026-11-02"])
    err = capsys.readouterr().err
    assert rc == 2 and "did not write, or that changed since" in err
    assert "核查记录.docx" in err and listed.name in err
    assert note.read_text() == "a verifier's notes"
    # an empty folder someone made there to sort the returned lists into would go with the swap too
    note.unlink()
    listed.unlink()
    (out / "lists" / "已核查").mkdir()
    rc = main(["run", "--input", str(landing), "--warehouse", str(wh), "--out", str(out), "--as-of", "2026-11-02"])
    err = capsys.readouterr().err
    assert rc == 2 and "lists/已核查/" in err and (out / "lists" / "已核查").is_dir()


def test_a_signal_after_the_commit_point_does_not_call_the_batch_undone(demo_run, tmp_path, monkeypatch, capsys):
    import flows.nightly as nightly

    def publish(*a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # systemd stopping the service while the run is reported
        time.sleep(0.5)

    monkeypatch.setattr(nightly, "create_markdown_artifact", publish)
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    rc = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(tmp_path / "o"),
               "--as-of", "2026-11-02"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "received after the commit point" in captured.err and "the batch was finished first" in captured.out
    assert q(wh, "SELECT max(batch_id), count(*) FILTER (WHERE outcome = 'succeeded') FROM runs") == [(2, 2)]


def test_ctrl_c_at_the_terminal_during_the_commit_does_not_hang(demo_run, tmp_path):
    """The whole process group gets SIGINT at the commit point (Prefect's temporary server dies with
    it): the batch finishes its renames, commits, and ends within seconds, not after minutes of
    retries to a dead server."""
    wh = copy_warehouse(demo_run["warehouse"], tmp_path / "w")
    out = tmp_path / "o"
    script = (
        "import os, signal, sys, time\n"
        "import flows.batch as b\n"
        "real = b.WorkingCopy.commit\n"
        "def commit(self):\n"
        "    os.killpg(0, signal.SIGINT)\n"
        "    time.sleep(0.5)\n"
        "    real(self)\n"
        "b.WorkingCopy.commit = commit\n"
        "from flows.cli import main\n"
        f"sys.argv = ['sentinel', 'run', '--input', {str(demo_run['landing'])!r}, '--warehouse', {str(wh)!r},"
        f" '--out', {str(out)!r}, '--as-of', '2026-11-02']\n"
        "sys.exit(main())\n")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          start_new_session=True, preexec_fn=as_in_a_terminal)
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    assert q(wh, "SELECT max(batch_id), count(*) FILTER (WHERE outcome = 'succeeded') FROM runs") == [(2, 2)]
    assert (out / "summary.md").exists() and not list(tmp_path.rglob(".*.batch*"))
    assert seconds < 90, f"took {seconds:.0f} s"
    assert "Error" not in proc.stderr and "ConnectError" not in proc.stderr, proc.stderr


def test_a_prefect_server_that_cannot_start_fails_the_batch_in_one_line(minimal_landing, tmp_path):
    """Prefect's temporary server exits before it answers (here its database is not one): the
    batch ends in one line naming the server's log, its loading thread (which waits for the same
    server to warm it: flows/launch.py `_warm_prefect`) adds nothing, and no warehouse is made."""
    site = tmp_path / "site"
    (site / ".prefect").mkdir(parents=True)
    (site / ".prefect" / "prefect.db").write_bytes(b"not a database\n" * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"
    r = subprocess.run([sys.executable, "-m", "flows.cli", "run", "--input", str(minimal_landing), "--warehouse",
                        str(site / "w.duckdb"), "--out", str(site / "out"), "--as-of", AS_OF.isoformat()],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    log = site / ".prefect" / "sentinel-temporary-server.log"
    assert r.stderr.strip() == (f"sentinel: RuntimeError: Prefect's temporary server exited with status 3 before "
                                f"it answered; its output: {log}"), r.stderr
    assert log.stat().st_size > 0
    assert not (site / "w.duckdb").exists() and not (site / "out").exists()
