"""The Spark engine: where a batch's rules and feature queries run when a city outgrows one machine.

Ingest, the data contracts and the quarantine stay on the machine that runs the batch (DuckDB). The
staging tables the rules read are written as Parquet to a **stage** (:func:`write_stage`), which Spark
reads; the rules' and features' SQL is the same source as on DuckDB, turned into Spark SQL by
:mod:`data_contracts.dialect`; results come back as Arrow into the warehouse.

The stage (decision): ``<stage>/batch-<id>/<table>/part-<file>.parquet``, one Parquet file per table
and landing file that supplied its rows (the staging tables' ``_file`` lineage column). Each part is
written on its own (to a temporary name, then renamed), so several writers may fill one stage at the
same time, extract by extract or file by file (e.g. ingest on several machines), without touching
each other's files or the data contracts. A local path or ``file://`` URI is written by DuckDB
directly; any other URI (``hdfs://``, ``s3a://``, ``gs://``) through ``pyarrow.fs`` (``s3a`` read as
``s3``), which must be configured for it on the batch machine, as Spark must be on the cluster.

Spark is found the standard ways: ``master`` (``--spark-master``) or ``SPARK_MASTER``; ``SPARK_REMOTE``
for Spark Connect; the master ``spark-submit`` was given, when the batch runs under it; ``local[*]``
when none is set. pyspark is an optional extra
(``pip install welfare-sentinel[spark]``): importing this module does not import it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import duckdb
import pyarrow as pa

from data_contracts import dialect, warehouse

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_SESSION = None


class SparkUnavailable(RuntimeError):
    """pyspark is not installed, or the cluster cannot be reached: says what to do."""


def _quiet_pyspark() -> None:
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    # analysis errors are raised to us (and reported by rule, masked); Spark also logs them, unmasked
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    logging.getLogger("py4j").setLevel(logging.WARNING)


def session(master: str | None = None, *, conf: dict | None = None):
    """The process's SparkSession (created once, then reused): ``master``, else ``SPARK_MASTER``;
    ``SPARK_REMOTE`` (Spark Connect) when no master is given; else ``local[*]``."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            return _SESSION
        _quiet_pyspark()
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise SparkUnavailable("--engine spark needs pyspark: pip install 'welfare-sentinel[spark]'") from None
        # the Python workers must be this interpreter (they import pyarrow and rapidfuzz)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        master = master or os.environ.get("SPARK_MASTER")
        builder = SparkSession.builder.appName("welfare-sentinel")
        submitted = "PYSPARK_GATEWAY_PORT" in os.environ and not master  # under spark-submit: its --master holds
        if submitted:
            settings = dict(conf or {})
        elif master or not os.environ.get("SPARK_REMOTE"):
            builder = builder.master(master or "local[*]")
            settings = {"spark.sql.warehouse.dir": tempfile.mkdtemp(prefix="sentinel-spark-warehouse-"),
                        # one machine: Spark's default of 200 shuffle partitions costs more than the work
                        **({"spark.sql.shuffle.partitions": str(4 * (os.cpu_count() or 2))}
                           if (master or "local[*]").startswith("local") else {}),
                        "spark.pyspark.python": os.environ["PYSPARK_PYTHON"],
                        "spark.sql.session.timeZone": "UTC", "spark.ui.showConsoleProgress": "false",
                        **(conf or {})}
        else:  # Spark Connect: the server holds the configuration
            builder = builder.remote(os.environ["SPARK_REMOTE"])
            settings = dict(conf or {})
        for k, v in settings.items():
            builder = builder.config(k, v)
        t = time.perf_counter()
        try:
            _SESSION = builder.getOrCreate()
        except Exception as e:  # noqa: BLE001 -- Java missing, cluster unreachable: one clear message
            raise SparkUnavailable(f"could not start a Spark session on {master or os.environ.get('SPARK_REMOTE')}: "
                                   f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        try:
            _SESSION.sparkContext.setLogLevel("ERROR")
        except Exception:  # noqa: BLE001 -- Spark Connect has no SparkContext
            pass
        log.info("Spark session on %s in %.1f s", master or os.environ.get("SPARK_REMOTE") or "local[*]",
                 time.perf_counter() - t)
        return _SESSION


def stop() -> None:
    """Stop the process's session (tests; the CLI's process ends with it anyway)."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None:
            _SESSION.stop()
            _SESSION = None


# ------------------------------------------------------------------------------------ the stage

def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file") or len(urlparse(uri).scheme) == 1  # C:\ on Windows


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path if uri.startswith("file://") else uri)


def part_name(file: str | None) -> str:
    """The stage file of one landing file's rows: named by a digest of its name (no ID, no odd characters)."""
    return "part-" + hashlib.sha256((file or "").encode()).hexdigest()[:16] + ".parquet"


def write_part(con: duckdb.DuckDBPyConnection, table: str, file: str | None, target: str, *,
               lineage: bool = True) -> None:
    """One table's rows from one landing file, as one Parquet file at ``target/<table>/part-….parquet``
    (written to a temporary name and renamed, so a reader never sees half a part). ``lineage=False``:
    a table without the ``_file`` column, written whole."""
    query = f"SELECT * FROM {table}" + (" WHERE _file IS NOT DISTINCT FROM $file" if lineage else "")
    params = {"file": file} if lineage else {}
    if _is_local(target):
        d = _local_path(target) / table
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / ("." + part_name(file) + ".tmp")
        con.execute(f"COPY ({query}) TO '{_sql_text(str(tmp))}' (FORMAT parquet)", params).fetchall()
        os.replace(tmp, d / part_name(file))
        return
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    uri = target.replace("s3a://", "s3://", 1)
    fs, root = pafs.FileSystem.from_uri(uri)
    fs.create_dir(f"{root}/{table}", recursive=True)
    tmp, final = f"{root}/{table}/.{part_name(file)}.tmp", f"{root}/{table}/{part_name(file)}"
    with fs.open_output_stream(tmp) as out:
        pq.write_table(con.sql(query, params=params).to_arrow_table(), out)
    fs.move(tmp, final)


def _sql_text(s: str) -> str:
    return s.replace("'", "''")


def write_stage(con: duckdb.DuckDBPyConnection, target: str, tables: list[str]) -> dict[str, int]:
    """Every part of ``tables`` (one per landing file that supplied rows); returns parts per table.
    A table without the ``_file`` lineage column (``name_reading``) is one part."""
    written = {}
    for table in tables:
        lineage = "_file" in warehouse.columns_of(con, table)
        files = ([r[0] for r in con.execute(f"SELECT DISTINCT _file FROM {table} ORDER BY _file").fetchall()] if lineage else [None])
        for f in files:
            write_part(con, table, f, target, lineage=lineage)
        if not files:  # an empty table still has its columns on Spark
            write_part(con, table, None, target, lineage=False)
        written[table] = len(files)
    return written


def default_stage(warehouse: Path) -> str:
    """The stage when none is given: a folder beside the warehouse file."""
    return str(Path(warehouse).absolute().with_name(Path(warehouse).name + ".stage"))


_ENGINES: dict = {}


def engine(stage_root: str, master: str | None = None) -> Spark:
    """The process's engine for one stage and master (the rules and the scorer share what was staged)."""
    with _LOCK:
        return _ENGINES.setdefault((stage_root, master), Spark(stage_root, master))


@dataclass
class Spark:
    """A batch's Spark side: the session, and the stage of this batch."""
    stage_root: str
    master: str | None = None
    batch_id: int | None = None
    tables: set[str] = field(default_factory=set)

    @property
    def stage(self) -> str:
        return f"{self.stage_root.rstrip('/')}/batch-{self.batch_id}"

    @property
    def session(self):
        return session(self.master)

    def stage_tables(self, con: duckdb.DuckDBPyConnection, batch_id: int, tables: list[str]) -> None:
        """Write (once per batch) and register as Spark views the tables the queries read."""
        if batch_id != self.batch_id:
            self.discard()
            self.batch_id, self.tables = batch_id, set()
        todo = [t for t in tables if t not in self.tables]
        if not todo:
            return
        spark = self.session
        t0 = time.perf_counter()
        parts = write_stage(con, self.stage, todo)
        for t in todo:
            spark.read.parquet(f"{self.stage}/{t}").createOrReplaceTempView(t)
        self.tables |= set(todo)
        log.info("staged %d tables (%d parts) in %.1f s", len(todo), sum(parts.values()), time.perf_counter() - t0)

    def sql(self, statement: str) -> None:
        self.session.sql(statement)

    def arrow(self, query: str) -> pa.Table:
        """A query's whole result, through Arrow."""
        return self.session.sql(query).toArrow()

    def cancel(self) -> None:
        """Cancel the session's running jobs (a failed or interrupted batch)."""
        try:
            self.session.sparkContext.cancelAllJobs()
        except Exception:  # noqa: BLE001 -- Spark Connect: interrupt instead
            self.session.interruptAll()

    def discard(self) -> None:
        """Remove this batch's stage (local stages only: a remote one is the site's to keep or clean)."""
        if self.batch_id is not None and _is_local(self.stage_root):
            shutil.rmtree(_local_path(self.stage), ignore_errors=True)
        if self.batch_id is not None and _SESSION is not None:  # the cached views of this batch (serve lives on)
            try:
                _SESSION.catalog.clearCache()
            except Exception:  # noqa: BLE001 -- a session that has gone away holds nothing
                pass
        self.batch_id, self.tables = None, set()
