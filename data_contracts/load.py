"""Writing one batch's delivery into the warehouse (DEVELOPERS.md table contract), inside the
transaction the ingest holds.

- The ingest's bookkeeping tables (:data:`TABLES`: ``ingested_files``, ``quarantine``,
  ``run_extracts``, ``landing_entries``, ``key_versions``) have their contract in
  ``sql/warehouse/<table>.sql`` and are made by ``warehouse.ensure``; rows are inserted under the
  contract's column names.
- ``raw_<extract>`` and ``stg_<extract>`` are the exception: their contract is the extract
  catalogue (:mod:`data_contracts.extracts`), so their DDL is derived from it (:func:`ddl`): raw
  holds every catalogue column as delivered (VARCHAR), staging each column as its kind's type
  (``extracts.KINDS``) with ``<col>_valid`` after an ID column; both end in the lineage columns
  :data:`LINEAGE`.
- ``raw_<extract>`` is a view over Parquet files in the warehouse's raw folder (:func:`raw_folder`,
  ``<warehouse file name>.raw/`` beside it), one file per extract per batch, listed in the table
  ``raw_files`` (decision, issue 15). The rows as delivered are read only by people (lineage,
  audit), never by the batch; DuckDB's own table writer took 3.5 of the ingest's 13.5 CPU-seconds
  at 1M persons to store them, a Parquet writer takes about a third of that and the files are
  half the size. polars' own writer (zstd), on the frame as the ingest holds it: as much CPU as
  pyarrow's on the same rows but on two threads, so half the wall time in the extract's preparation
  (0.29 against 0.56 s for 1M household rows), and no conversion to Arrow first. The batch works
  on a copy of the warehouse and swaps it in on commit; the files it writes have names of their
  own (batch, random part), so until the warehouse that lists them is committed they are only
  unlisted files, and every ingest first removes the files of its own naming the warehouse does not
  list (a failed batch's, a replaced snapshot's; nothing else:
  :func:`tidy_raw_folder`).
- :func:`write_extract`: raw and staging of one extract. Re-delivery (decision): a file whose
  sha256 was already loaded for the same extract is skipped (:func:`already_loaded`); a snapshot
  extract whose set of files is identical to the snapshot currently loaded is skipped as a whole.
  Raw tables of snapshot extracts hold the current delivery (replaced with staging); raw tables
  of incremental extracts are append-only history, and staging takes the new version of a key
  (upsert), counted in ``key_versions``.
- :func:`write_record`: what the batch made of each extract and of each landing entry.

The batch's own row (``runs``) is not written here: the flow's bookkeeping (``flows/runs.py``)
is its one writer.
"""
from __future__ import annotations

from dataclasses import dataclass

import re
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pyarrow

from data_contracts import warehouse
from data_contracts.errors import RefusedInput
from data_contracts.extracts import EXTRACTS, Extract
from data_contracts.landing import Entry, SourceFile

TABLES = ("ingested_files", "quarantine", "run_extracts", "landing_entries", "key_versions", "changed_subjects",
          "raw_files")
# the subjects a staged row belongs to, by column (besides every ID column: a person); a payment's
# period too, for the scorer, which reads the payments of its window only (models/scorer.py)
SUBJECT_COLUMNS = {"household_id": "household", "bank_account": "account", "worker_id": "worker",
                   "period": "period"}
LINEAGE = {"_batch_id": "BIGINT", "_file": "VARCHAR", "_line": "BIGINT"}


def raw_folder(warehouse_file: Path | str) -> Path:
    """``<warehouse file name>.raw/`` beside the warehouse file (``city.duckdb`` -> ``city.duckdb.raw/``):
    the Parquet files of ``raw_<extract>``. The whole file name, so that two warehouses in one folder
    (``city.duckdb``, ``city.db``, ``city.2026-05-01``) never share one (each removes the files it
    does not list); and a backup of ``city.duckdb*`` takes it along. A path DuckDB would read as a
    wildcard pattern (``*``, ``?``, ``[``) is refused: the views name their files by path."""
    w = Path(warehouse_file)
    if any(c in str(w.absolute()) for c in "*?["):
        raise RefusedInput(w, "contains *, ? or [, which DuckDB reads as a wildcard in the paths of the raw_* "
                              "views; choose a warehouse path without them")
    return w.with_name(w.name + ".raw")


OUR_FILE = re.compile(r"^[a-z_]+-(?:\d+|earlier)-[0-9a-f]{12}\.parquet$")  # write_raw_file's, move_raw_tables'


def _raw_columns(extract: Extract) -> list[tuple[str, str]]:
    return [(c, "VARCHAR") for c in extract.column_names] + list(LINEAGE.items())


def raw_view(extract: Extract, files: list[Path]) -> str:
    """``raw_<extract>`` over its Parquet files (absolute paths), in the contract's column order and
    types; no rows when there is no file."""
    cols = _raw_columns(extract)
    if not files:
        return (f"CREATE OR REPLACE VIEW raw_{extract.name} AS SELECT "
                + ", ".join(f'NULL::{t} AS "{c}"' for c, t in cols) + " WHERE false")
    paths = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    # by name: a column the catalogue gains later is NULL in the files written before it
    return (f"CREATE OR REPLACE VIEW raw_{extract.name} AS SELECT "
            + ", ".join(f'"{c}"::{t} AS "{c}"' for c, t in cols)
            + f" FROM read_parquet([{paths}], union_by_name = true)")


def ddl(extract: Extract) -> list[str]:
    """``raw_<extract>`` (a view with no rows, if absent) and ``CREATE TABLE IF NOT EXISTS`` of
    ``stg_<extract>``, derived from the extract catalogue (their contract)."""
    lineage = [f"{k} {v}" for k, v in LINEAGE.items()]
    stg = [f'"{c}" {t}' for c, t in extract.staging_columns] + lineage
    return [raw_view(extract, []).replace("CREATE OR REPLACE VIEW", "CREATE VIEW IF NOT EXISTS"),
            f"CREATE TABLE IF NOT EXISTS stg_{extract.name} ({', '.join(stg)})"]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Every table the ingest writes, created if absent (bookkeeping tables: columns a warehouse of
    an earlier version lacks added)."""
    warehouse.ensure(con, *TABLES)
    for e in EXTRACTS.values():
        for stmt in ddl(e):
            warehouse.execute(con, stmt)


def _raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The extracts whose ``raw_<extract>`` is still a table (a warehouse of an earlier version)."""
    return [e for e in EXTRACTS if warehouse.exists(con, f"raw_{e}")]


def move_raw_tables(con: duckdb.DuckDBPyConnection, folder: Path, batch_id: int) -> None:
    """A warehouse made by an earlier version kept ``raw_<extract>`` as a table: its rows move to a
    Parquet file of the raw folder, listed in ``raw_files`` (under the batch that moved them), and
    the table is dropped. Inside the batch's transaction: a failed batch leaves the table as it was."""
    for name in _raw_tables(con):
        file = folder / f"{name}-earlier-{uuid.uuid4().hex[:12]}.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        target = str(file).replace("'", "''")
        con.execute(f"COPY (FROM raw_{name}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        rows = con.execute(f"SELECT count(*) FROM raw_{name}").fetchall()[0][0]
        con.execute(f"DROP TABLE raw_{name}")
        con.execute("INSERT INTO raw_files BY NAME SELECT ?::BIGINT AS batch_id, ? AS extract, ? AS file, "
                    "?::BIGINT AS rows", [batch_id, name, file.name, rows])


def write_raw_file(folder: Path, extract: Extract, batch_id: int, rows: pl.DataFrame) -> str | None:
    """Tonight's rows of ``raw_<extract>`` (as delivered, with their lineage) as a Parquet file of
    the raw folder; its name, or None when there is no row. Unlisted until :func:`write_extract`
    lists it in ``raw_files`` and the batch commits."""
    if rows.height == 0:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{extract.name}-{batch_id}-{uuid.uuid4().hex[:12]}.parquet"
    rows.select(*extract.column_names, pl.lit(batch_id, pl.Int64).alias("_batch_id"),
                pl.col("_file"), pl.col("_line").cast(pl.Int64)).write_parquet(folder / name, compression="zstd")
    return name


def write_raw_views(con: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """Every ``raw_<extract>`` view over the files ``raw_files`` lists (made again each batch: a
    warehouse moved with its raw folder gets its paths right on its next batch). A listed file
    that is not in the folder (the warehouse file was copied without it) is left out of the view,
    never a reason to fail the batch; returns the extracts that miss some, for the log."""
    listed: dict[str, list[Path]] = {name: [] for name in EXTRACTS}
    for extract, file in con.execute("SELECT extract, file FROM raw_files ORDER BY batch_id, file").fetchall():
        if extract in listed:  # an extract the catalogue no longer has keeps its files, without a view
            listed[extract].append(folder.absolute() / file)
    missing = []
    for name, files in listed.items():
        present = [f for f in files if f.is_file()]
        if len(present) < len(files):
            missing.append(name)
        con.execute(raw_view(EXTRACTS[name], present))
    return missing


def tidy_raw_folder(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    """Remove the files the ingest wrote (named as :func:`write_raw_file` names them) that
    ``raw_files`` does not list: a failed or killed batch's, a replaced snapshot's. Anything else in
    the folder is left alone. Run before the batch writes any (a batch runs under the warehouse's
    lock; ``ingest.ingest`` on its own takes no lock: never run it beside a batch of the same
    warehouse); returns how many were removed."""
    if not folder.is_dir():
        return 0
    listed = {f for (f,) in con.execute("SELECT file FROM raw_files").fetchall()}
    gone = 0
    for f in folder.glob("*.parquet"):
        if f.name not in listed and OUR_FILE.match(f.name) and f.is_file() and not f.is_symlink():
            f.unlink()
            gone += 1
    return gone


def next_batch_id(con: duckdb.DuckDBPyConnection) -> int:
    """One more than any batch the warehouse records (in ``runs`` or in the ingest's
    ``run_extracts``); 1 for a new warehouse."""
    have = [t for t in ("runs", "run_extracts") if warehouse.exists(con, t)]
    if not have:
        return 1
    ids = " UNION ALL ".join(f"SELECT max(batch_id) AS b FROM {t}" for t in have)
    return warehouse.execute(con, f"SELECT coalesce(max(b), 0) + 1 FROM ({ids})")[0][0]


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[tuple]) -> None:
    """Rows of a bookkeeping table, as tuples in the order of its contract's columns."""
    if rows:
        cols = warehouse.column_names(table)
        con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)


@dataclass
class ExtractCounts:
    """One extract in one batch (``run_extracts``); rows_read = rows_loaded + rows_quarantined."""
    extract: str
    delivered: bool = False
    files: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0


@dataclass
class Prepared:
    """One extract read, normalised and validated, ready to be written (Arrow tables)."""
    counts: ExtractCounts
    file_rows: list[tuple]  # ingested_files rows
    quarantine: pyarrow.Table | None = None
    raw_file: str | None = None  # tonight's raw rows, a Parquet file of the raw folder (write_raw_file)
    raw_rows: int = 0
    stg: pyarrow.Table | None = None
    changed: pyarrow.Table | None = None  # keys delivered tonight in several files with different contents
    keys_resent: int = 0  # keys already in staging (incremental extracts), set when written
    keys_changed: int = 0  # of which with other content, or changed between tonight's files


def file_row(batch_id: int, sf: SourceFile, status: str, rows_read: int) -> tuple:
    """An ``ingested_files`` row."""
    return (batch_id, sf.extract, sf.rel, sf.fmt, sf.encoding, sf.size, sf.sha256, status, rows_read, sf.stat)


def already_loaded(con: duckdb.DuckDBPyConnection, extract: Extract, files: list[SourceFile]) -> set[str]:
    """sha256 of the files to skip as re-deliveries."""
    if extract.snapshot:
        cur = con.execute(
            "SELECT list(DISTINCT sha256) FROM ingested_files WHERE extract = ? AND status = 'loaded' "
            "AND batch_id = (SELECT max(batch_id) FROM ingested_files WHERE extract = ? AND status = 'loaded')",
            [extract.name, extract.name]).fetchone()[0] or []
        return set(cur) if set(cur) == {f.sha256 for f in files} else set()
    rows = con.execute("SELECT DISTINCT sha256 FROM ingested_files WHERE extract = ? AND status = 'loaded' "
                       "AND sha256 IN (SELECT unnest(?))", [extract.name, [f.sha256 for f in files]]).fetchall()
    return {r[0] for r in rows}


def staged_rows(con: duckdb.DuckDBPyConnection, extract: Extract) -> int:
    return warehouse.execute(con, f"SELECT count(*) FROM stg_{extract.name}")[0][0]


def _q(col: str) -> str:
    return '"' + col + '"'


def write_extract(wcon: duckdb.DuckDBPyConnection, extract: Extract, p: Prepared, batch_id: int, clock) -> None:
    """One extract's files, quarantine, raw and staging rows; sets ``p.keys_resent`` and
    ``p.keys_changed`` (incremental extracts). ``clock(step)`` times the steps."""
    insert_rows(wcon, "ingested_files", p.file_rows)
    if p.stg is None:
        return
    name = extract.name
    # Tonight's Arrow tables are scanned by name from this function's locals (DuckDB's replacement
    # scan), never registered: a view registered inside the batch's transaction keeps its Arrow
    # table alive until the commit, even once unregistered (the dropped view is kept for a
    # rollback), so that every extract of the night stayed in memory at once (the ingest's peak at
    # 1M persons went from 2.16 to 1.72 GB without it).
    tonight_quarantine, tonight_stg, tonight_changed = p.quarantine, p.stg, p.changed  # noqa: F841
    wcon.execute(f"INSERT INTO quarantine BY NAME SELECT {batch_id} AS batch_id, '{name}' AS extract, _file AS file, "
                 "_line AS line, reason, record FROM tonight_quarantine")
    record_changes(wcon, extract, batch_id, tonight_stg)
    clock("changes")
    if extract.snapshot:
        wcon.execute("DELETE FROM raw_files WHERE extract = ?", [name])
        wcon.execute(f"DELETE FROM stg_{name}")
    else:
        # a key already loaded: the earlier version stays in raw_* (append-only), staging takes the
        # new one; counted, and counted as changed when its content differs (or differed between
        # tonight's files), so that no change goes unsaid
        k = extract.key[0]
        content = extract.column_names  # the values, not the lineage nor the derived _valid
        differs = (f"ROW({', '.join(f's.{_q(c)}' for c in content)}) IS DISTINCT FROM "
                   f"ROW({', '.join(f't.{_q(c)}' for c in content)})")
        resent = f"FROM tonight_stg s JOIN stg_{name} t ON s.{_q(k)} = t.{_q(k)}"  # an inner join: only re-sent keys
        changed = f"SELECT s.{_q(k)} {resent} WHERE {differs}"
        if tonight_changed is not None:
            changed += f" UNION SELECT {_q(k)} FROM tonight_changed"
        p.keys_resent, p.keys_changed = wcon.execute(
            f"SELECT (SELECT count(*) {resent}), (SELECT count(*) FROM ({changed}))").fetchall()[0]
        wcon.execute(f'DELETE FROM stg_{name} WHERE "{k}" IN (SELECT "{k}" FROM tonight_stg)')
    clock("delete")
    if p.raw_file is not None:
        wcon.execute("INSERT INTO raw_files BY NAME SELECT ?::BIGINT AS batch_id, ? AS extract, ? AS file, "
                     "?::BIGINT AS rows", [batch_id, name, p.raw_file, p.raw_rows])
    wcon.execute(f"INSERT INTO stg_{name} BY NAME SELECT *, {batch_id}::BIGINT AS _batch_id FROM tonight_stg")
    clock("write stg")


def subjects_of(extract: Extract) -> list[tuple[str, str]]:
    """(column, subject_type) of the subjects a row of this extract names."""
    return ([(c, "person") for c in extract.id_columns]
            + [(c, t) for c, t in SUBJECT_COLUMNS.items() if c in extract.column_names])


def record_changes(wcon: duckdb.DuckDBPyConnection, extract: Extract, batch_id: int,
                   tonight_stg: pyarrow.Table) -> None:
    """``changed_subjects`` of one extract, before tonight's rows (``tonight_stg``, scanned by name)
    replace what they replace: the subjects of every row that differs between the staged rows they
    replace (a snapshot: all of them; an incremental extract: the same keys) and tonight's, old and
    new versions both, compared on every staged column (an ID's ``_valid`` flag too: it depends on
    the batch date). Any difference at all also gives one row 'extract' (subject NULL): a row that
    names no subject (an empty ID) still changes the rules that read the extract. An extract staged
    for the first time: 'all'."""
    name = extract.name
    if not wcon.execute(f"SELECT count(*) FROM (SELECT 1 FROM stg_{name} LIMIT 1)").fetchall()[0][0]:
        wcon.execute("INSERT INTO changed_subjects BY NAME SELECT ?::BIGINT AS batch_id, ? AS extract, "
                     "'all' AS subject_type, NULL AS subject_id", [batch_id, name])
        return
    content = ", ".join(_q(c) for c, _ in extract.staging_columns)
    old = f"SELECT {content} FROM stg_{name}"
    if not extract.snapshot:
        k = _q(extract.key[0])
        old += f" WHERE {k} IN (SELECT {k} FROM tonight_stg)"
    subjects = " UNION ".join([f"SELECT '{t}' AS subject_type, CAST({_q(c)} AS VARCHAR) AS subject_id FROM d "
                               f"WHERE {_q(c)} IS NOT NULL" for c, t in subjects_of(extract)]
                              + ["SELECT 'extract' AS subject_type, NULL AS subject_id FROM (FROM d LIMIT 1)"])
    wcon.execute(f"INSERT INTO changed_subjects BY NAME WITH o AS ({old}), n AS (SELECT {content} FROM tonight_stg), "
                 f"d AS ((FROM o EXCEPT ALL FROM n) UNION ALL (FROM n EXCEPT ALL FROM o)) "
                 f"SELECT {batch_id}::BIGINT AS batch_id, '{name}' AS extract, subject_type, subject_id "
                 f"FROM ({subjects})")


def write_record(wcon: duckdb.DuckDBPyConnection, batch_id: int, counts: dict[str, ExtractCounts],
                 versions: list[tuple], found: dict[str, list[SourceFile]], entries: list[Entry],
                 status: dict[str, str]) -> None:
    """What the batch made of its input: ``run_extracts`` (every extract, delivered or not),
    ``key_versions`` (incremental extracts written tonight) and ``landing_entries``."""
    insert_rows(wcon, "run_extracts", [(batch_id, c.extract, c.delivered, c.files, c.files_skipped, c.rows_read,
                                        c.rows_loaded, c.rows_quarantined) for c in counts.values()])
    insert_rows(wcon, "key_versions", versions)
    insert_rows(wcon, "landing_entries", _entry_rows(batch_id, found, entries, status))


def _entry_rows(batch_id: int, found: dict[str, list[SourceFile]], entries: list[Entry],
                status: dict[str, str]) -> list[tuple]:
    """``landing_entries`` rows: every entry, the extract files with what became of them."""
    rows = []
    for files in found.values():
        for sf in files:
            st = status.get(sf.rel, "loaded")
            reason = (f"extract {sf.extract}" if st == "loaded" else
                      f"extract {sf.extract}: identical to a file already loaded (re-delivery)")
            if sf.link_to:
                reason += f"; symbolic link to {sf.link_to}"
            rows.append((batch_id, sf.rel, sf.kind, st, reason))
    for e in entries:
        st = e.status
        if e.kind == "directory" and e.status == "loaded":  # an extract directory: loaded if any of its files was
            inside = [status.get(sf.rel) for sf in found.get(e.entry, [])]
            st = "loaded" if "loaded" in inside else "skipped"
        rows.append((batch_id, e.entry, e.kind, st, e.reason))
    return sorted(rows, key=lambda r: r[1])
