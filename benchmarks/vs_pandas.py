"""The whole nightly batch against the analyst's hand-written pandas script, side by side.

    python benchmarks/vs_pandas.py [--landing DIR | --persons 1000000] [--runs 3] [--work DIR]

Runs ``sentinel run`` (a fresh warehouse each time: a first night, Prefect included) and
``../shared/bench/baseline_pandas.py`` alternately, A B A B ..., each under ``/usr/bin/time -v``,
and prints each side's median wall time and peak memory (maximum resident set size) and the
median of the per-pair ratios. The script runs in a venv of its own with numpy, pandas and pyarrow
only (``benchmarks/.venv-baseline``, made on first use), so that the comparison is of the two
programs, not of a shared environment.

Then, on the five categories the script covers (deceased_paid, residency_ineligible, age_ineligible
for GAOLING and GUER, duplicate_payment, asset_ineligible), it compares the subjects both found
(category, subject_type, subject_id) and prints what only one side found, per category.
Never part of ``make test``.
"""
from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parents[1]
BASELINE = HERE.parent / "shared" / "bench" / "baseline_pandas.py"
BASELINE_VENV = HERE / "benchmarks" / ".venv-baseline"
SENTINEL = HERE / ".venv" / "bin" / "sentinel"
AS_OF = "2026-11-01"
COVERED = ["deceased_paid", "residency_ineligible", "age_ineligible", "duplicate_payment", "asset_ineligible"]


def baseline_python() -> Path:
    py = BASELINE_VENV / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BASELINE_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "numpy", "pandas", "pyarrow"], check=True)
    return py


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in GB) of one command, from /usr/bin/time -v."""
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    h, m, s = wall.groups()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))
    return int(h or 0) * 3600 + int(m) * 60 + float(s), rss / 1024 / 1024


def sentinel_once(landing: Path, work: Path) -> tuple[float, float]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return timed([str(SENTINEL), "run", "--input", str(landing), "--warehouse", str(work / "warehouse.duckdb"),
                  "--out", str(work / "out"), "--as-of", AS_OF])


def baseline_once(py: Path, landing: Path, out: Path) -> tuple[float, float]:
    return timed([str(py), str(BASELINE), "--landing", str(landing), "--out", str(out)])


def compare(sentinel_out: Path, baseline_csv: Path) -> pl.DataFrame:
    key = ["category", "subject_type", "subject_id"]
    ours = (pl.read_csv(sentinel_out / "warnings.csv", infer_schema=False)
            .filter(pl.col("category").is_in(COVERED)
                    & ((pl.col("category") != "age_ineligible") | pl.col("program_code").is_in(["GAOLING", "GUER"])))
            .select(key).unique().with_columns(ours=True))
    theirs = pl.read_csv(baseline_csv, infer_schema=False).select(key).unique().with_columns(theirs=True)
    both = ours.join(theirs, on=key, how="full", coalesce=True)
    return (both.group_by("category").agg(
        both=(pl.col("ours") & pl.col("theirs")).sum(),
        only_sentinel=(pl.col("ours") & pl.col("theirs").is_null()).sum(),
        only_script=(pl.col("theirs") & pl.col("ours").is_null()).sum()).sort("category"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landing", type=Path, help="a landing directory (default: generate one)")
    ap.add_argument("--persons", type=int, default=1_000_000, help="persons of the generated city")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side (at least 3)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    a = ap.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="vs-pandas-"))
    landing = a.landing
    if landing is None:
        landing = work / "city"
        if not landing.exists():
            subprocess.run([str(SENTINEL), "generate", "--persons", str(a.persons), "--out", str(landing),
                            "--as-of", AS_OF], check=True)
    py = baseline_python()
    ours, theirs = [], []
    for i in range(max(3, a.runs)):
        ours.append(sentinel_once(landing, work / "sentinel"))
        theirs.append(baseline_once(py, landing, work / "baseline.csv"))
        print(f"run {i + 1}: sentinel {ours[-1][0]:.1f} s {ours[-1][1]:.2f} GB; "
              f"script {theirs[-1][0]:.1f} s {theirs[-1][1]:.2f} GB", flush=True)
    med = statistics.median
    ratio = med(o[0] / t[0] for o, t in zip(ours, theirs))
    print(f"sentinel run:       median {med(o[0] for o in ours):.1f} s, peak {med(o[1] for o in ours):.2f} GB")
    print(f"baseline_pandas.py: median {med(t[0] for t in theirs):.1f} s, peak {med(t[1] for t in theirs):.2f} GB")
    print(f"median ratio sentinel/script (wall): {ratio:.2f}")
    print("subjects on the script's five categories:")
    print(compare(work / "sentinel" / "out", work / "baseline.csv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
