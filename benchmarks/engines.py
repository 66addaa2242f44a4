"""The rules and the scorer's features on DuckDB against Apache Spark (local mode), side by side.

    python benchmarks/engines.py --warehouse /tmp/bench/w1m.duckdb --warehouse /tmp/bench/w10m.duckdb \\
        [--repeat 1] [--work DIR] [--master 'local[2]'] [--driver-memory 8g] [--conf KEY=VALUE ...] \\
        [--timeout 3600] [--wait-for-gb 14]

Takes warehouses that are already ingested (by ``sentinel run``, or ``data_contracts.ingest.ingest``; this script never
ingests) and, for
each warehouse and each engine, alternately (duckdb, spark, duckdb, spark ... ``--repeat`` times),
copies the warehouse into ``--work`` (the originals are only ever opened read-only) and runs, in a
fresh Python subprocess of its own:

- DuckDB: ``run_rules(con, as_of, batch_id)``, then ``features.compute(con, as_of)``;
- Spark: ``spark.session(master, conf=...)`` (start-up: pyspark's import and the driver JVM), then
  ``run_rules(..., engine=Spark(stage, master))`` (which first stages the tables it reads as Parquet:
  timed on its own, and taken out of the rules' seconds), then ``features.compute(..., engine=...)``.

Measured per run: start-up, staging, rules and features seconds; the run's wall time (from starting
the subprocess to the end of the features, the interpreter's start and the imports included, the
copy of the warehouse not); and the peak memory of the whole process tree (Python, and for Spark its
JVM and Python workers): the summed RSS of the subprocess and all its descendants, sampled from
/proc every 0.2 s (shared pages are counted once per process, so this is an upper bound); and the
CPU seconds of that tree and the machine's load average meanwhile, since other work may share it.
Sizes are GB of 10^9 bytes. batch_id is ``max(batch_id)`` of ``run_extracts``; as_of is 2026-11-01.

Then it checks that the engines agree: ``rule_hits`` per rule (every hit column but batch_id, as
multisets; rows that only one side has are counted on the key columns and, for the same key, per
differing column) and the feature frames (rows per person, and per column). Counts only: no ID
number is ever printed. It prints the table, the per-rule hits and seconds of the last run of each
engine (``rule_runs``; Spark runs four rules at once, so its per-rule seconds overlap and include
waiting for the other rules' jobs), and the growth of each engine from the smallest warehouse to each
larger one (ratios of the medians over ``--repeat``).

The copies (with their ``rule_hits`` and ``rule_runs``), each run's log and the features of the last
run of each side stay in ``--work``. A run that fails or exceeds ``--timeout`` is reported as such
with the end of its log, and the others go on. Long (the 10M runs take many minutes) and memory-hungry:
run it under ``nice`` on a quiet machine. Never part of ``make test``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
AS_OF = dt.date(2026, 11, 1)
ENGINES = ("duckdb", "spark")
KEY = ["rule_id", "subject_type", "subject_id", "program_code", "finding_key"]
PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------- one side (child)

def side(engine: str, warehouse: Path, out: Path, master: str, conf: dict, stage_root: Path) -> int:
    """One engine on one (copied) warehouse, in this process; writes its seconds to ``out`` (JSON)
    and its features beside it (``.features.parquet``), after the timing."""
    import logging

    sys.path.insert(0, str(HERE))
    import duckdb

    from models import features
    from rules import run_rules

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    res: dict = {"engine": engine, "startup_s": None, "stage_s": 0.0, "stage_log": []}

    class StageLog(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith(("staged ", "Spark session on ")):
                res["stage_log"].append(msg)

    logging.getLogger("data_contracts.spark").addHandler(StageLog())

    eng = None
    if engine == "spark":
        from data_contracts import spark as spark_mod

        t = time.perf_counter()
        spark_mod.session(master, conf=conf)
        res["startup_s"] = time.perf_counter() - t
        eng = spark_mod.Spark(str(stage_root), master)
        staging = eng.stage_tables

        def timed_stage(*a, **k):  # the staging on its own (the log line says the same)
            t = time.perf_counter()
            try:
                return staging(*a, **k)
            finally:
                res["stage_s"] += time.perf_counter() - t
        eng.stage_tables = timed_stage

    t = time.perf_counter()
    con = duckdb.connect(str(warehouse))
    if engine == "duckdb":
        res["startup_s"] = time.perf_counter() - t  # opening the warehouse: the whole start-up
    batch_id = con.execute("SELECT max(batch_id) FROM run_extracts").fetchall()[0][0] or 1

    t = time.perf_counter()
    summary = run_rules(con, AS_OF, batch_id, engine=eng)
    rules_wall = time.perf_counter() - t
    stage_in_rules = res["stage_s"]
    res["rules_s"] = rules_wall - stage_in_rules
    res["rules_summary"] = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}

    t = time.perf_counter()
    feats = features.compute(con, AS_OF) if eng is None else features.compute(con, AS_OF, engine=eng, batch_id=batch_id)
    res["features_s"] = time.perf_counter() - t - (res["stage_s"] - stage_in_rules)
    res["features_rows"] = feats.height
    res["end_time"] = time.time()  # the parent's wall ends here

    feats.write_parquet(out.with_suffix(".features.parquet"))
    con.close()
    if eng is not None:
        eng.discard()
        spark_mod.stop()
    out.write_text(json.dumps(res))
    return 0


# ---------------------------------------------------------------------------------- memory sampling

TICK = os.sysconf("SC_CLK_TCK")


def tree_rss(root: int, cpu: dict | None = None) -> tuple[int, dict]:
    """Summed RSS (bytes) of ``root`` and all its descendants, and the bytes per command name;
    ``cpu``: filled with each process's CPU seconds so far (user + system), by pid."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(d))
        ticks[int(d)] = int(fields[11]) + int(fields[12])
    total, by_name, todo = 0, {}, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
        except (OSError, IndexError, ValueError):
            continue
        total += rss
        by_name[name] = by_name.get(name, 0) + rss
        if cpu is not None and pid in ticks:
            cpu[pid] = ticks[pid] / TICK
    return total, by_name


class Sampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.at_peak, self.done = pid, every, 0, {}, threading.Event()
        self.cpu: dict[int, float] = {}  # last CPU seconds seen, per process of the tree
        self.loads: list[float] = []  # the machine's 1-minute load average (others' work included)

    def run(self):
        while not self.done.is_set():
            total, by_name = tree_rss(self.pid, self.cpu)
            if total > self.peak:
                self.peak, self.at_peak = total, by_name
            with open("/proc/loadavg") as f:
                self.loads.append(float(f.read().split()[0]))
            self.done.wait(self.every)


# ---------------------------------------------------------------------------------- one run (parent)

def available_gb() -> float:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) * 1024 / 1e9


def wait_for_memory(gb: float, every: int = 60, patience: int = 1800) -> None:
    """Wait (up to ``patience`` seconds) until the machine has ``gb`` available; then go on regardless."""
    waited = 0
    while available_gb() < gb and waited < patience:
        print(f"  {available_gb():.1f} GB available, less than {gb:g}: waiting {every} s", flush=True)
        time.sleep(every)
        waited += every
    if available_gb() < gb:
        print(f"  still only {available_gb():.1f} GB available after {patience} s: running anyway", flush=True)


def one_run(engine: str, source: Path, work: Path, a) -> dict:
    tag = f"{source.stem}-{engine}"
    wh, out, log = work / f"{tag}.duckdb", work / f"{tag}.json", work / f"{tag}.log"
    for p in (wh, out, work / f"{tag}.duckdb.wal"):
        p.unlink(missing_ok=True)
    t = time.perf_counter()
    shutil.copy(source, wh)
    copy_s = time.perf_counter() - t
    stage = work / f"{tag}.stage"
    shutil.rmtree(stage, ignore_errors=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "_side", engine, str(wh), str(out),
           "--master", a.master, "--stage", str(stage), *sum((["--conf", c] for c in a.conf_list), [])]
    with open(log, "w") as f:
        start = time.time()
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=HERE, start_new_session=True)
        sampler = Sampler(p.pid)
        sampler.start()
        try:
            rc = p.wait(timeout=a.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGTERM)  # our own process group: the child, its JVM and workers
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                rc = p.wait()
            timed_out = True
        process_s = time.time() - start
        sampler.done.set()
        sampler.join()
    shutil.rmtree(stage, ignore_errors=True)  # a failed Spark run leaves its stage
    res = {"engine": engine, "warehouse": str(source), "copy_s": copy_s, "process_s": process_s, "rc": rc,
           "peak_gb": sampler.peak / 1e9, "cpu_s": sum(sampler.cpu.values()),
           "load": statistics.mean(sampler.loads) if sampler.loads else None, "peak_by_process": {k: round(v / 1e9, 2) for k, v in sampler.at_peak.items()},
           "log": str(log), "copy": str(wh), "ok": rc == 0 and not timed_out and out.exists()}
    if res["ok"]:
        res.update(json.loads(out.read_text()))
        res["wall_s"] = res["end_time"] - start
    else:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        res["failure"] = ("timed out after %d s" % a.timeout if timed_out else f"exit status {rc}")
        res["log_tail"] = tail
    return res


# ---------------------------------------------------------------------------------- comparison

def compare_hits(duck: Path, spark: Path) -> list[str]:
    """What differs between the two copies' rule_hits (and rule_runs' statuses), in counts."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{duck}' AS d (READ_ONLY)")
    con.execute(f"ATTACH '{spark}' AS s (READ_ONLY)")
    cols = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE database_name = 'd' "
                                      "AND table_name = 'rule_hits' ORDER BY column_index").fetchall()
            if c != "batch_id"]
    sel = ", ".join(cols)
    lines = []
    counts = con.execute(
        "SELECT coalesce(a.rule_id, b.rule_id) r, coalesce(a.n, 0), coalesce(b.n, 0) FROM "
        "(SELECT rule_id, count(*) n FROM d.rule_hits GROUP BY 1) a FULL JOIN "
        "(SELECT rule_id, count(*) n FROM s.rule_hits GROUP BY 1) b USING (rule_id) ORDER BY r").fetchall()
    for r, nd, ns in counts:
        if nd != ns:
            lines.append(f"  {r}: {nd} hits on duckdb, {ns} on spark")
    runs = con.execute("SELECT rule_id, a.status, b.status FROM d.rule_runs a FULL JOIN s.rule_runs b USING (rule_id) "
                       "WHERE a.status IS DISTINCT FROM b.status ORDER BY 1").fetchall()
    lines += [f"  {r}: {x} on duckdb, {y} on spark" for r, x, y in runs]
    only = {}
    for name, (x, y) in {"duckdb": ("d", "s"), "spark": ("s", "d")}.items():
        only[name] = dict(con.execute(
            f"SELECT rule_id, count(*) FROM (SELECT {sel} FROM {x}.rule_hits EXCEPT ALL SELECT {sel} FROM {y}.rule_hits) "
            "GROUP BY 1").fetchall())
    key = ", ".join(KEY)
    for r in sorted(set(only["duckdb"]) | set(only["spark"])):
        nd, ns = only["duckdb"].get(r, 0), only["spark"].get(r, 0)
        kd, ks = (con.execute(f"SELECT count(*) FROM (SELECT {key} FROM {x}.rule_hits WHERE rule_id = ? EXCEPT ALL "
                              f"SELECT {key} FROM {y}.rule_hits WHERE rule_id = ?)", [r, r]).fetchall()[0][0]
                  for x, y in (("d", "s"), ("s", "d")))
        other = [c for c in cols if c not in KEY]
        on = " AND ".join(f"a.{k} IS NOT DISTINCT FROM b.{k}" for k in KEY)
        diff = con.execute(
            "SELECT " + ", ".join(f"count(*) FILTER (WHERE a.{c} IS DISTINCT FROM b.{c})" for c in other)
            + f" FROM d.rule_hits a JOIN s.rule_hits b ON {on} WHERE a.rule_id = ?", [r]).fetchall()[0]
        cols_diff = ", ".join(f"{c} {n}" for c, n in zip(other, diff) if n)
        lines.append(f"  {r}: {nd} rows only on duckdb, {ns} only on spark; by key ({key}) {kd} only on duckdb, "
                     f"{ks} only on spark; same key, different column: {cols_diff or 'none'}")
    con.close()
    return lines


def compare_features(duck: Path, spark: Path) -> list[str]:
    import polars as pl

    a, b = pl.read_parquet(duck), pl.read_parquet(spark)
    lines = []
    if a.columns != b.columns:
        lines.append(f"  columns differ: {a.columns} / {b.columns}")
        return lines
    if a.height != b.height:
        lines.append(f"  {a.height} rows on duckdb, {b.height} on spark")
    j = a.join(b, on="id_number", how="full", suffix="_s", coalesce=True, nulls_equal=True)
    od = j.filter(pl.col(a.columns[1] + "_s").is_null() & pl.col(a.columns[1]).is_not_null()).height
    os_ = j.filter(pl.col(a.columns[1]).is_null() & pl.col(a.columns[1] + "_s").is_not_null()).height
    if od or os_:
        lines.append(f"  persons only on duckdb: {od}, only on spark: {os_}")
    both = j.drop_nulls()
    for c in a.columns[1:]:
        n = both.filter(pl.col(c) != pl.col(c + "_s")).height
        if n:
            worst = both.select((pl.col(c) - pl.col(c + "_s")).abs().max()).item()
            lines.append(f"  {c}: {n} persons differ (largest difference {worst:g})")
    if not lines and a.sort("id_number").equals(b.sort("id_number")) is False:
        lines.append("  frames differ (order aside) in a way not counted above")
    return lines


def per_rule(duck: Path, spark: Path) -> str:
    import duckdb

    con = duckdb.connect()
    con.execute(f"ATTACH '{duck}' AS d (READ_ONLY)")
    con.execute(f"ATTACH '{spark}' AS s (READ_ONLY)")
    rows = con.execute("SELECT rule_id, a.status, a.hits, b.hits, a.seconds, b.seconds FROM d.rule_runs a "
                       "FULL JOIN s.rule_runs b USING (rule_id) ORDER BY b.seconds DESC NULLS LAST").fetchall()
    con.close()
    out = [f"  {'rule_id':<32} {'status':<8} {'hits duckdb':>11} {'hits spark':>10} {'s duckdb':>9} {'s spark':>8}"]
    for r, st, hd, hs, sd, ss in rows:
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        out.append(f"  {r:<32} {st or '-':<8} {hd if hd is not None else '-':>11} {hs if hs is not None else '-':>10} "
                   f"{f(sd):>9} {f(ss):>8}")
    return "\n".join(out)


# ---------------------------------------------------------------------------------- main

def persons(wh: Path) -> int:
    import duckdb

    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute("SELECT count(DISTINCT id_number) FROM stg_household_registration").fetchall()[0][0]


def fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_side"]:
        ap = argparse.ArgumentParser()
        ap.add_argument("_side")
        ap.add_argument("engine", choices=ENGINES)
        ap.add_argument("warehouse", type=Path)
        ap.add_argument("out", type=Path)
        ap.add_argument("--master", required=True)
        ap.add_argument("--stage", type=Path, required=True)
        ap.add_argument("--conf", action="append", default=[])
        s = ap.parse_args(argv)
        return side(s.engine, s.warehouse, s.out, s.master, dict(c.split("=", 1) for c in s.conf), s.stage)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, action="append", required=True,
                    help="an ingested warehouse (repeat the option for several); never written to")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each engine on each warehouse")
    ap.add_argument("--work", type=Path, help="scratch folder for the copies and logs (default: a temporary one)")
    ap.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    ap.add_argument("--driver-memory", default="8g", help="spark.driver.memory (local mode: all of Spark's heap)")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="more Spark settings")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds before a run is stopped (default 3600)")
    ap.add_argument("--wait-for-gb", type=float, default=0, metavar="GB",
                    help="before each run, wait until the machine has this much memory available (checked every "
                         "60 s, for up to 30 min; then it runs anyway, and says so). Default 0: no wait")
    a = ap.parse_args(argv)
    a.conf_list = [f"spark.driver.memory={a.driver_memory}", "spark.ui.enabled=false", *a.conf]
    work = a.work or Path(tempfile.mkdtemp(prefix="engines-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder {work}; Spark {a.master}, " + ", ".join(a.conf_list), flush=True)

    results: list[dict] = []
    sizes = {}
    for wh in a.warehouse:
        sizes[wh] = persons(wh)
        for i in range(a.repeat):
            pair = {}
            for engine in ENGINES:  # alternate: duckdb, spark, duckdb, spark ...
                if a.wait_for_gb:
                    print(f"{wh.name} run {i + 1} {engine}: {available_gb():.1f} GB available", flush=True)
                    wait_for_memory(a.wait_for_gb)
                r = one_run(engine, wh, work, a)
                r["persons"], r["run"] = sizes[wh], i + 1
                results.append(r)
                pair[engine] = r
                if r["ok"]:
                    print(f"{wh.name} run {i + 1} {engine}: startup {fmt(r['startup_s'], '.2f')} s, stage "
                          f"{fmt(r['stage_s'] if engine == 'spark' else None)} s, rules {r['rules_s']:.1f} s, features "
                          f"{r['features_s']:.1f} s, wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.0f} s, load {fmt(r['load'])}, "
                          f"peak {r['peak_gb']:.2f} GB "
                          f"{r['peak_by_process']}; {r['rules_summary']['hits']} hits, {r['features_rows']} feature rows"
                          + ("; " + "; ".join(r["stage_log"]) if r["stage_log"] else ""), flush=True)
                else:
                    print(f"{wh.name} run {i + 1} {engine}: FAILED ({r['failure']}) after {r['process_s']:.0f} s, "
                          f"peak {r['peak_gb']:.2f} GB; log {r['log']}; its end:\n    "
                          + "\n    ".join(r["log_tail"]), flush=True)
            if all(pair[e]["ok"] for e in ENGINES):
                d, s = (Path(pair[e]["copy"]) for e in ENGINES)
                diff = compare_hits(d, s)
                print(f"{wh.name} run {i + 1}: rule_hits " + ("identical on both engines (every column but batch_id)"
                                                               if not diff else "DIFFER:\n" + "\n".join(diff)), flush=True)
                fd = compare_features(d.with_suffix(".features.parquet"), s.with_suffix(".features.parquet"))
                print(f"{wh.name} run {i + 1}: features " + ("identical on both engines" if not fd
                                                              else "DIFFER:\n" + "\n".join(fd)), flush=True)
                if i + 1 == a.repeat:
                    print(f"{wh.name}: per rule (rule_runs of the last run; by Spark seconds):\n" + per_rule(d, s))

    (work / "results.json").write_text(json.dumps(results, indent=1, default=str))
    med = statistics.median
    keys = ("startup_s", "stage_s", "rules_s", "features_s", "wall_s", "peak_gb", "cpu_s", "load")
    summary: dict = {}
    for wh in a.warehouse:
        for e in ENGINES:
            ok = [r for r in results if r["warehouse"] == str(wh) and r["engine"] == e and r["ok"]]
            runs = [r for r in results if r["warehouse"] == str(wh) and r["engine"] == e]
            summary[wh, e] = ({k: med(r[k] for r in ok) if ok and (e == "spark" or k != "stage_s") else None
                               for k in keys} | {"n": len(ok), "of": len(runs)})
    print()
    print(f"median of {a.repeat} run(s). persons: distinct ID numbers in stg_household_registration. stage: inside "
          "run_rules, taken out of rules. total wall: subprocess start to end of features. peak RSS: summed RSS of "
          "the process tree, GB of 1e9 bytes. CPU s: user+system seconds of the tree (sampled). load: the machine's "
          "mean 1-minute load average during the run (2 cores; other work included)")
    head = f"{'persons':>11} {'engine':<14} {'startup s':>9} {'stage s':>8} {'rules s':>8} {'features s':>10} " \
           f"{'total wall s':>12} {'peak RSS GB':>11} {'CPU s':>7} {'load':>5}  runs ok"
    print(head)
    print("-" * len(head))
    for wh in a.warehouse:
        for e in ENGINES:
            m = summary[wh, e]
            name = e if e == "duckdb" else f"spark {a.master}"
            if not m["n"]:
                failed = [r for r in results if r["warehouse"] == str(wh) and r["engine"] == e]
                print(f"{sizes[wh]:>11,} {name:<14} FAILED: " + "; ".join(
                    f"{r['failure']} after {r['process_s']:.0f} s, peak {r['peak_gb']:.2f} GB" for r in failed)
                      + f"  0/{m['of']}")
                continue
            print(f"{sizes[wh]:>11,} {name:<14} {fmt(m['startup_s'], '.2f'):>9} {fmt(m['stage_s']):>8} "
                  f"{m['rules_s']:>8.1f} {m['features_s']:>10.1f} {m['wall_s']:>12.1f} {m['peak_gb']:>11.2f} "
                  f"{m['cpu_s']:>7.0f} {fmt(m['load']):>5}  {m['n']}/{m['of']}")
    base = min(a.warehouse, key=lambda w: sizes[w])
    for wh in a.warehouse:
        if wh == base:
            continue
        print(f"\ngrowth {sizes[base]:,} -> {sizes[wh]:,} persons (x{sizes[wh] / sizes[base]:.1f}): ratio of medians")
        for e in ENGINES:
            b, m = summary[base, e], summary[wh, e]
            if not (b["n"] and m["n"]):
                print(f"  {e:<7} -: a side failed")
                continue
            parts = [f"{k.removesuffix('_s').removesuffix('_gb')} x{m[k] / b[k]:.1f}" for k in keys
                     if k != "load" and m[k] is not None and b[k]]
            print(f"  {e:<7} " + ", ".join(parts))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
