"""Thirty nights replayed day by day on a generated city (issue 17), then one full run at the last date.

    /usr/bin/time -v .venv/bin/python benchmarks/replay.py [--persons 200000] [--seed 1]
        [--first 2026-10-03] [--nights 30] [--work DIR] [--landing DIR]

The city is generated for the batch date 2026-11-01 (or --landing is used as it is) and replayed with
synthetic.replay: the first night delivers the history up to that night, every later night the
snapshots as of that night and the incremental rows dated that day (a header-only payments file
on a night without payments), each through the real flow (flows.nightly.run_batch) on one
warehouse. Prints per night the wall time, the payments delivered, the warnings awaiting a
conclusion and the warnings raised and resolved that night per category; then the churn per
category (warnings raised and later resolved within the replay), and whether the warnings awaiting
a conclusion after the last night equal those of one full run at the last date (rule warnings:
category, subject, program, amount, periods; model_outlier reported apart). Peak memory is the
process's (run under /usr/bin/time -v). Never part of `make test`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="sentinel-bench-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import polars as pl  # noqa: E402

from flows.nightly import run_batch  # noqa: E402
from synthetic.city import generate  # noqa: E402
from synthetic.replay import Replay, nights  # noqa: E402

AS_OF = dt.date(2026, 11, 1)
AWAITING = """SELECT category, subject_type, subject_id, program_code, CAST(amount_at_risk AS VARCHAR),
                     first_period, last_period
              FROM warnings WHERE status IN ('new', 'open')"""


def states(wh: Path) -> pl.DataFrame:
    with duckdb.connect(str(wh), read_only=True) as con:
        return pl.from_arrow(con.sql("SELECT warning_id, category, status FROM warnings").to_arrow_table())


def awaiting(wh: Path) -> Counter:
    with duckdb.connect(str(wh), read_only=True) as con:
        return Counter(con.execute(AWAITING).fetchall())


def fmt(c: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items())) or "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--persons", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--first", type=dt.date.fromisoformat, default=dt.date(2026, 10, 3))
    ap.add_argument("--nights", type=int, default=30)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--landing", type=Path, default=None, help="replay this landing directory instead of generating one")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="sentinel-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    for p in work.glob("*"):
        if p.name != "city":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    landing = a.landing
    if landing is None:
        landing = work / "city" / "landing"
        t0 = time.perf_counter()
        generate(persons=a.persons, seed=a.seed, out=landing, as_of=AS_OF)
        print(f"generated {a.persons:,} persons in {time.perf_counter() - t0:.1f} s", flush=True)
    t0 = time.perf_counter()
    replay = Replay(landing)
    print(f"landing read once in {time.perf_counter() - t0:.1f} s", flush=True)

    days = nights(a.first, a.first + dt.timedelta(days=a.nights - 1))
    paydays = sorted(set(replay.dates("payments").to_list()) & set(days))
    print(f"nights {days[0]} .. {days[-1]}; paydays among them: {', '.join(d.strftime('%m-%d') for d in paydays)}")
    wh, out = work / "replay.duckdb", work / "out"
    before = pl.DataFrame(schema={"warning_id": pl.String, "category": pl.String, "status": pl.String})
    churn: Counter = Counter()
    walls = []
    prev = None
    print(f"{'night':10}  {'wall s':>6}  {'write s':>7}  {'payments':>8}  {'awaiting':>8}  raised tonight | resolved tonight")
    for i, n in enumerate(days):
        d = work / "in" / n.isoformat()
        t0 = time.perf_counter()
        rows = replay.write(d, n, prev)
        t_write = time.perf_counter() - t0
        run_batch(d, wh, out, n)
        wall = time.perf_counter() - t0
        walls.append(wall)
        after = states(wh)
        j = after.join(before, on="warning_id", how="left", suffix="_before")
        live = pl.col("status").is_in(["new", "open"])
        was_live = pl.col("status_before").is_in(["new", "open"]).fill_null(False)
        raised = j.filter(live & ~was_live)
        resolved = j.filter((pl.col("status") == "resolved") & was_live)
        churn.update(resolved["category"].to_list())  # nothing is resolved on the first night of a warehouse
        print(f"{n}  {wall:6.1f}  {t_write:7.1f}  {rows.get('payments', 0):8,}  {after.filter(live).height:8,}  "
              f"{fmt(Counter(raised['category'].to_list()))} | {fmt(Counter(resolved['category'].to_list()))}", flush=True)
        before = after.select("warning_id", "category", "status")
        prev = n
        shutil.rmtree(d)

    print(f"\nwall per night: first {walls[0]:.1f} s, then median {sorted(walls[1:])[len(walls[1:]) // 2]:.1f} s, "
          f"max {max(walls[1:]):.1f} s, total {sum(walls):.1f} s")
    print(f"churn per category (warnings resolved within the replay): {fmt(churn) if churn else 'none'}")

    full_in, full_wh = work / "full", work / "full.duckdb"
    t0 = time.perf_counter()
    replay.write(full_in, days[-1])
    run_batch(full_in, full_wh, work / "full-out", days[-1])
    print(f"one full run at {days[-1]}: {time.perf_counter() - t0:.1f} s")
    r, f = awaiting(wh), awaiting(full_wh)
    rule_r = Counter({k: v for k, v in r.items() if k[0] != "model_outlier"})
    rule_f = Counter({k: v for k, v in f.items() if k[0] != "model_outlier"})
    print(f"rule warnings awaiting a conclusion: replay {sum(rule_r.values()):,}, full run {sum(rule_f.values()):,}; "
          f"equal: {rule_r == rule_f} (only in the replay {sum((rule_r - rule_f).values())}, "
          f"only in the full run {sum((rule_f - rule_r).values())})")
    subj = lambda c: {k[2] for k in c if k[0] == "model_outlier"}  # noqa: E731
    mr, mf = subj(r), subj(f)
    print(f"model_outlier awaiting: replay {len(mr)}, full run {len(mf)}, in both {len(mr & mf)} "
          f"(the replay keeps the model fitted on its first night; the full run fits its own)")


if __name__ == "__main__":
    main()
