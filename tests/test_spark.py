"""The same rules and scorer features on Apache Spark as on DuckDB, proven on a real standalone cluster.

One cluster (a master and a worker started from the pyspark package on loopback) and one SparkSession
for the whole module, stopped afterwards. One whole nightly batch runs with ``sentinel run --engine
spark`` (the CLI, in this process, so that it uses the session) on the session's generated city, and is
compared with the same batch on DuckDB (conftest's ``demo_run``): every hit column of every rule
(rule_hits), the warnings (category, subject, program, amount, periods, evidence) and the model scores.
"""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

pytest.importorskip("pyspark", reason="the [spark] extra is not installed (make test installs it)")

from data_contracts import spark as spark_mod  # noqa: E402
from tests.spark_cluster import standalone_cluster  # noqa: E402

AS_OF = dt.date(2026, 11, 1)
CHECKER = Path(__file__).resolve().parents[2] / "shared" / "tools" / "check_outputs.py"
HIT_COLUMNS = ("batch_id, rule_id, rule_version, category, severity, subject_type, subject_id, id_number, name, "
               "program_code, county_code, township, village, first_period, last_period, amount_at_risk, evidence, "
               "evidence_size, finding_key")
WARNING_COLUMNS = ("category, rule_id, subject_type, subject_id, program_code, county_code, township, village, "
                   "first_period, last_period, amount_at_risk, evidence, severity")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("spark-cluster")) as master:
        yield master


@pytest.fixture(scope="module")
def session(cluster):
    s = spark_mod.session(cluster, conf={"spark.ui.enabled": "false", "spark.executor.memory": "1g",
                                           "spark.sql.shuffle.partitions": "4",  # a small city: few, not 200
                                           "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"})
    yield s
    spark_mod.stop()


@pytest.fixture(scope="module")
def spark_run(prefect_harness, session, cluster, demo_run, tmp_path_factory):
    """`sentinel run --engine spark` on the demo_run's city, into a new warehouse."""
    from flows.cli import main

    root = tmp_path_factory.mktemp("spark-run")
    wh, out, stage = root / "warehouse.duckdb", root / "out", root / "stage"
    t = time.perf_counter()
    code = main(["run", "--input", str(demo_run["landing"]), "--warehouse", str(wh), "--out", str(out),
                 "--as-of", AS_OF.isoformat(), "--xlsx", "--engine", "spark", "--spark-master", cluster,
                 "--stage-uri", str(stage)])
    assert code == 0
    return {"warehouse": wh, "out": out, "stage": stage, "seconds": time.perf_counter() - t}


def _rows(warehouse, query: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(query).fetchall()


def _runs_on_the_standalone_cluster(session, cluster):
    assert session.sparkContext.master == cluster
    # a job really runs on the worker's executor, not in the driver
    assert session.range(1000).selectExpr("sum(id)").collect()[0][0] == 499500
    assert len(session.sparkContext.statusTracker().getExecutorInfos()) >= 2  # the driver and an executor


def _every_rule_gives_the_same_hits(spark_run, demo_run):
    ran = "SELECT rule_id, status FROM rule_runs ORDER BY rule_id"
    assert _rows(spark_run["warehouse"], ran) == _rows(demo_run["warehouse"], ran)
    assert {s for _, s in _rows(spark_run["warehouse"], ran)} == {"ran"}  # the whole catalog, none skipped
    q = f"SELECT {HIT_COLUMNS} FROM rule_hits"
    on_spark, on_duckdb = _rows(spark_run["warehouse"], q), _rows(demo_run["warehouse"], q)
    assert len(on_spark) == len(on_spark and set(on_spark))  # no row twice (a crossed unnest would repeat rows)
    only_duckdb = sorted(set(on_duckdb) - set(on_spark))
    only_spark = sorted(set(on_spark) - set(on_duckdb))
    assert not only_duckdb and not only_spark, (only_duckdb[:3], only_spark[:3])
    # the city plants every category a rule raises: the comparison covers each of them
    categories = {r[0] for r in _rows(demo_run["warehouse"], "SELECT DISTINCT category FROM rule_hits")}
    from rules.catalog import load_catalog

    assert categories == {r.category for r in load_catalog()}


def _the_same_warnings_and_lists(spark_run, demo_run):
    q = f"SELECT {WARNING_COLUMNS} FROM warnings ORDER BY ALL"
    on_spark, on_duckdb = _rows(spark_run["warehouse"], q), _rows(demo_run["warehouse"], q)
    assert on_spark == on_duckdb
    assert any(r[0] == "model_outlier" for r in on_spark)  # the scorer's features ran on Spark too
    # the lists the verifiers receive: the same files, the same rows (ids are salted per warehouse)
    spark_lists = sorted(p.relative_to(spark_run["out"]) for p in spark_run["out"].rglob("*.csv"))
    duck_lists = sorted(p.relative_to(demo_run["out"]) for p in demo_run["out"].rglob("*.csv"))
    assert spark_lists == duck_lists
    # the batch's stage was written, then removed with the batch
    assert spark_run["stage"].is_dir() and not any(spark_run["stage"].iterdir())


def _outputs_conform_to_the_contract(spark_run):
    if not CHECKER.exists():  # ../shared (the contract's checker) is beside the checkout in CI
        return
    r = subprocess.run([sys.executable, str(CHECKER), "--warehouse", str(spark_run["warehouse"]),
                        "--out", str(spark_run["out"]), "--require-xlsx"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def _the_same_model_scores(spark_run, demo_run):
    # both batches fit a new model (none kept yet) on the features their engine computed: the same
    # scores and explanations for every person mean the same features, to the 9 decimals kept
    q = "SELECT id_number, score, explanation FROM model_scores ORDER BY id_number"
    on_spark, on_duckdb = _rows(spark_run["warehouse"], q), _rows(demo_run["warehouse"], q)
    assert len(on_duckdb) > 1000
    assert on_spark == on_duckdb


def test_a_whole_batch_on_a_standalone_spark_cluster_equals_the_duckdb_batch(session, cluster, spark_run, demo_run):
    """One test, not five: pytest-xdist hands tests out one by one (its groups are ignored with pytest 9,
    xdist issue #1386), and each worker that got one would start a cluster and run a batch of its own."""
    _runs_on_the_standalone_cluster(session, cluster)
    _every_rule_gives_the_same_hits(spark_run, demo_run)
    _the_same_warnings_and_lists(spark_run, demo_run)
    _the_same_model_scores(spark_run, demo_run)
    _outputs_conform_to_the_contract(spark_run)
