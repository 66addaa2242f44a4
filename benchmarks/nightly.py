"""The whole nightly run on a city, then a night that adds one day of payments, then a night where
nothing new arrived, in one long-running process: Prefect's server is up before the first night (started here by a flow run of nothing, timed apart and printed; with this
script's fresh Prefect home it includes the migration of Prefect's new database, about 15 s).
Until 2026-11-30 the server's start was counted in the full night, which made the ratios below
look smaller than a served process sees them. `sentinel serve` pays more per night than this:
Prefect's runner starts each scheduled flow run in a process of its own, which imports the flow's
code again and starts cold.

    /usr/bin/time -v .venv/bin/python benchmarks/nightly.py LANDING_DIR [--work DIR] [--served [--cold]]

``--served``: each night the way `sentinel serve`'s runner starts it instead, a flow run in a
process of its own (Prefect's ``run_flow_in_subprocess``) on a local Prefect server started first
(``flows.serve.local_server``), in a warm spare process as serve does
(``flows.spare.warm_flow_runs``); ``--cold`` without that, spawned as Prefect does by itself.
Wall times only (the stages' seconds are in each night's summary.md).

1. full: `run_batch` on LANDING_DIR into a fresh warehouse (ingest, rules, scorer, warnings, lists);
2. one more day: the same landing directory plus one new file with one day of payments (a thirtieth
   of the last month's, for the next month, paid the day after), one day later. The files already
   loaded are recognised (by their stat, left in place since the first night; by their bytes where
   the stat cannot tell) and skipped; the rules recompute what the new rows touch
   (rules/incremental.py). The nights run on a copy of LANDING_DIR in the work folder, made before
   the first (until 2026-11-30 evening the second and third nights ran on a second copy, every file
   new to the stat check: 0.25 s more at 1M);
3. nothing new: the same landing directory again, one day later.

Prints each night's wall time, its stages' seconds and peak memory (the process's largest resident
set size while the stage ran, flows/meter.py) and its ratio to the full run; the whole run's peak
is the process's (run under /usr/bin/time -v). Never part of `make test`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="sentinel-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

from flows import prefect_api  # noqa: E402,F401,I001 -- first: Prefect's settings (startup timeout) before Prefect loads
from data_contracts.landing import SETTLED_NS  # noqa: E402
from flows.nightly import run_batch  # noqa: E402
# what the batch imports on first use (models/store.py: scikit-learn; the audit: scipy.stats), imported
# here with the flow's code, so that the full night counts the work, not these imports (as before
# 2026-11-30, when flows.nightly imported scikit-learn itself)
import joblib  # noqa: E402,F401
import scipy.stats  # noqa: E402,F401
import sklearn.ensemble  # noqa: E402,F401
from prefect import flow  # noqa: E402


def one_day_of_payments(warehouse: Path, target: Path, as_of: dt.date) -> int:
    """A thirtieth of the last period's payments, for the next period, paid on `as_of`."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        last = con.execute("SELECT max(period) FROM stg_payments").fetchall()[0][0]
        df = pl.from_arrow(con.sql(
            "SELECT * EXCLUDE (_batch_id, _file, _line) FROM stg_payments WHERE period = $p AND hash(payment_id) % 30 = 0",
            params={"p": last}).to_arrow_table())
    y, m = int(last[:4]), int(last[5:])
    nxt = f"{y + m // 12}-{m % 12 + 1:02d}"
    df = df.select([c for c in df.columns if not c.endswith("_valid")]).with_columns(
        payment_id=pl.lit("D") + pl.col("payment_id"), period=pl.lit(nxt), pay_date=pl.lit(as_of))
    df.write_csv(target)
    return df.height


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("landing", type=Path)
    ap.add_argument("--as-of", type=dt.date.fromisoformat, default=dt.date(2026, 11, 1))
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--served", action="store_true", help="each night in a process of its own, as serve runs it")
    ap.add_argument("--cold", action="store_true", help="with --served: spawned, not forked from a warm process")
    a = ap.parse_args()
    global COLD
    COLD = a.cold
    if a.served:
        from flows import spare
        from flows.serve import local_server

        t0 = time.perf_counter()
        with local_server() as url:
            os.environ["PREFECT_API_URL"] = url
            if not a.cold:
                spare.warm_flow_runs()
                spare.wait_ready()  # as a day before the first night would
            print(f"Prefect's server up: {time.perf_counter() - t0:7.1f} s (before the first night, not counted in it)",
                  flush=True)
            nights(a, served_night)
        return
    nights(a, in_process_night)


def in_process_night(landing: Path, wh: Path, out: Path, as_of: dt.date) -> dict:
    return run_batch(landing, wh, out, as_of)


COLD = False  # --cold


def served_night(landing: Path, wh: Path, out: Path, as_of: dt.date) -> None:
    from prefect.flow_engine import run_flow_in_subprocess

    from flows.nightly import nightly

    proc = run_flow_in_subprocess(nightly, parameters={"input_dir": str(landing), "warehouse": str(wh),
                                                       "out_dir": str(out), "as_of": as_of})
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"the night of {as_of} failed (exit {proc.exitcode})")


def nights(a, night) -> None:
    work = a.work or Path(tempfile.mkdtemp(prefix="sentinel-bench-"))
    wh = work / "warehouse.duckdb"
    for p in work.glob("*"):
        shutil.rmtree(p) if p.is_dir() else p.unlink()

    if night is in_process_night:
        t0 = time.perf_counter()
        prefect_started()
        print(f"Prefect's server up: {time.perf_counter() - t0:7.1f} s (before the first night, not counted in it)",
              flush=True)

    # the operator's landing directory, to which each night's delivery adds files (the files already
    # loaded stay where they are); a copy, so that LANDING_DIR is never written. Delivered before the
    # night, as files are: a file whose status changed within the last SETTLED_NS when it is hashed is
    # not recognised by its stat the next night (data_contracts/landing.py)
    landing = work / "landing"
    shutil.copytree(a.landing, landing)
    time.sleep(SETTLED_NS / 1e9)
    full, s1 = timed(night, landing, wh, work / "out", a.as_of)
    rows = (f"({sum(c['rows_loaded'] for c in s1['ingest']['extracts'].values()):,} rows loaded; "
            f"{sum(s1['warnings']['statuses'].values())} warnings)") if s1 else ""
    print(f"full run:        {full:7.1f} s  {rows}  {stages(s1)}", flush=True)

    day = a.as_of + dt.timedelta(days=1)
    n = one_day_of_payments(wh, landing / f"payments-{day:%Y%m%d}.csv", day)
    time.sleep(SETTLED_NS / 1e9)
    incr, s2 = timed(night, landing, wh, work / "out", day)
    skipped = (f"; {sum(c['files_skipped'] for c in s2['ingest']['extracts'].values())} files already loaded, "
               "skipped") if s2 else ""
    print(f"one more day:    {incr:7.1f} s  ({n} new payments{skipped})  {stages(s2)}", flush=True)
    none, s3 = timed(night, landing, wh, work / "out", day + dt.timedelta(days=1))
    print(f"nothing new:     {none:7.1f} s  {stages(s3)}")
    print(f"ratio one more day / full: {incr / full:.3f}")
    print(f"ratio nothing new / full:  {none / full:.3f}")


@flow(name="prefect-started")
def prefect_started() -> None:
    """Nothing: its run makes Prefect start its temporary server, as `sentinel serve` has by the first night."""


def timed(night, *args) -> tuple[float, dict | None]:
    """The night's wall time and summary; its summary.md is kept beside the outputs as
    summary-<date>.md (the next night replaces summary.md), with each rule's seconds."""
    t0 = time.perf_counter()
    summary = night(*args)
    seconds = time.perf_counter() - t0
    out, as_of = args[2], args[3]
    shutil.copyfile(out / "summary.md", out.with_name(f"summary-{as_of}.md"))
    if night is served_night and not COLD:
        from flows import spare

        spare.wait_ready()  # the next night's spare is warm a day later: not counted in this night
    return seconds, summary


def stages(s: dict | None) -> str:
    """Seconds per stage from a batch summary (ingest, rules, scorer; the rest is warnings, lists,
    commit); nothing for a served night, whose summary stays in its process."""
    if s is None:
        return ""
    scorer = s["scorer"]["seconds"]
    scorer = scorer["total"] if isinstance(scorer, dict) else scorer
    computed = s["rules"].get("computed", {})
    peaks = ", ".join(f"{name} {m['peak_mb'] / 1024:.2f}" for name, m in s.get("stages", {}).items()
                      if m["peak_mb"] is not None)
    return (f"[ingest {s['ingest']['seconds']:.1f}, rules {s['rules']['seconds']:.1f} {computed}, "
            f"scorer {scorer:.1f}, batch {s['seconds']:.1f}; peak GB: {peaks}]")


if __name__ == "__main__":
    main()
