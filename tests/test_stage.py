"""The Spark engine's stage (data_contracts/spark.py): one Parquet part per table and landing file, each
written on its own, so that several writers can fill one stage at the same time. No Spark needed: the
parts are read back with DuckDB."""
from __future__ import annotations

import threading

import duckdb

from data_contracts import spark as spark_mod


def test_several_writers_fill_one_stage_file_by_file(demo_run, tmp_path):
    wh, stage = str(demo_run["warehouse"]), str(tmp_path / "stage")
    with duckdb.connect(wh, read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'stg%' "
                                            "ORDER BY 1").fetchall()]
        parts = {t: [f for (f,) in con.execute(f"SELECT DISTINCT _file FROM {t}").fetchall()] for t in tables}
    assert len(parts["stg_payments"]) >= 2  # the city delivers payments in several files
    jobs = [(t, f) for t in tables for f in parts[t]]
    errors = []

    def writer(share):  # its own connection, as another process or machine would have
        try:
            with duckdb.connect(wh, read_only=True) as con:
                for t, f in share:
                    spark_mod.write_part(con, t, f, stage)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(jobs[i::3],)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert not list((tmp_path / "stage").rglob("*.tmp"))  # every part renamed into place
    with duckdb.connect(wh, read_only=True) as con:
        for t in tables:
            files = sorted((tmp_path / "stage" / t).glob("part-*.parquet"))
            assert len(files) == len(parts[t]), t
            staged = f"read_parquet('{tmp_path / 'stage' / t}/*.parquet')"
            for a, b in ((t, staged), (staged, t)):  # the same rows, nothing lost, nothing twice
                assert con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall() \
                    == [(0,)], (t, a)
    # the batch's own writer gives the same parts (names are digests of the landing file, no ID in them)
    again = tmp_path / "again"
    with duckdb.connect(wh, read_only=True) as con:
        written = spark_mod.write_stage(con, str(again), tables)
    assert written == {t: len(parts[t]) for t in tables}
    assert sorted(p.relative_to(again) for p in again.rglob("*.parquet")) == \
        sorted(p.relative_to(tmp_path / "stage") for p in (tmp_path / "stage").rglob("*.parquet"))
