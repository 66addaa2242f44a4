"""The warehouse's contract, and the one way SQL files are read and run.

- Every table the batch writes has its DDL in ``sql/warehouse/<table>.sql`` (one
  ``CREATE TABLE IF NOT EXISTS <table>`` per file): :func:`ensure` creates it, or adds the columns a
  warehouse made by an earlier version lacks; :func:`recreate` replaces a per-batch table (rule_hits,
  model_hits); :func:`columns` gives its columns and types to the code that writes rows of it (the
  rule compiler's hit columns, the scorer's model_hits). The per-extract ``raw_*``/``stg_*`` tables
  are the exception: their columns are the extract catalogue's (``data_contracts/extracts.py``).
- Every hand-written SQL file, whatever folder of ``sql/`` holds it, is read by :func:`load`, which
  checks it: one statement, and a ``CREATE`` makes the object named by the file stem (a query or
  an INSERT is named after what it returns or feeds). :func:`run` binds only the ``$parameters`` a
  statement uses (DuckDB refuses extras) and fetches its result; :func:`create_all` makes a folder's
  views and macros in dependency order.
- :func:`transaction`: BEGIN, COMMIT, or ROLLBACK on any exception (Ctrl-C included).
- :func:`writer_lock`: one writer at a time per warehouse file (a batch, or feedback being recorded);
  :func:`output_lock`: one batch at a time per output folder.
- :func:`configure`: the settings of a batch stage's connection (DuckDB's memory limit).
- :func:`hold_open` / :func:`connect` / :func:`let_go`: a batch's working copy open once for the
  whole batch, each stage on a connection of its own to it.
"""
from __future__ import annotations

import fcntl
import os
import re
import uuid
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.errors import RefusedInput

SQL_ROOT = Path(__file__).resolve().parents[1] / "sql"
WAREHOUSE = "warehouse"
CREATES = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(VIEW|TABLE|MACRO)\s+"
                     r"(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I | re.M)


class SqlFileError(ValueError):
    """A SQL file that breaks the one-statement, named-after-its-object convention (or fails to run)."""

    def __init__(self, file: Path, problem: str):
        self.file = file
        super().__init__(f"{_shown(file)}: {problem}")


def _shown(file: Path) -> str:
    try:
        return str(file.relative_to(SQL_ROOT.parent))
    except ValueError:
        return str(file)


def strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def _path(folder: str | Path, name: str) -> Path:
    d = Path(folder)
    return (d if d.is_absolute() else SQL_ROOT / d) / f"{name}.sql"


@cache
def read_statement(path: Path) -> str:
    """The checked statement of one SQL file (comments kept, trailing ``;`` dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SqlFileError(path, "no such SQL file") from None
    body = strip_comments(text)
    if len(duckdb.extract_statements(body)) != 1:
        raise SqlFileError(path, "expected exactly one statement")
    m = CREATES.search(body)
    if m and m.group(2) != path.stem:
        raise SqlFileError(path, f"creates {m.group(2)}, but a file is named after what it creates ({path.stem})")
    return text.strip().rstrip(";")


def load(folder: str | Path, name: str) -> str:
    """``sql/<folder>/<name>.sql``, checked (a relative folder is under ``sql/``)."""
    return read_statement(_path(folder, name))


def run(con: duckdb.DuckDBPyConnection, folder: str | Path, name: str, **params) -> list[tuple]:
    """Execute ``sql/<folder>/<name>.sql`` with the parameters it uses; returns its rows
    (DuckDB wants every result fetched before the connection does anything else)."""
    return execute(con, load(folder, name), used_params(load(folder, name), params))


def used_params(text: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if re.search(rf"\${re.escape(k)}\b", text)}


def execute(con: duckdb.DuckDBPyConnection, query: str, params=None) -> list[tuple]:
    """Run one statement and fetch its result, leaving the connection free for the next."""
    return con.execute(query, params or []).fetchall()


def frame(con: duckdb.DuckDBPyConnection, query: str, params=None) -> pl.DataFrame:
    """A query's result as a polars frame, through Arrow."""
    return pl.from_arrow(con.sql(query, params=params).to_arrow_table())


def read_folder(folder: str | Path) -> list[tuple[str, str]]:
    """(name, statement) of every file of a folder, in creation order: a file comes after every
    other file of the folder whose name it mentions."""
    d = Path(folder) if Path(folder).is_absolute() else SQL_ROOT / folder
    texts = {f.stem: read_statement(f) for f in sorted(d.glob("*.sql"))}
    deps = {n: {o for o in texts if o != n and re.search(rf"\b{o}\b", strip_comments(t))} for n, t in texts.items()}
    order: list[str] = []
    while len(order) < len(texts):
        ready = sorted(n for n in texts if n not in order and deps[n] <= set(order))
        if not ready:
            raise SqlFileError(d / "*.sql", f"circular references among {sorted(set(texts) - set(order))}")
        order.extend(ready)
    return [(n, texts[n]) for n in order]


def create_all(con: duckdb.DuckDBPyConnection, folder: str | Path) -> list[str]:
    """Create every view, macro or table of a folder in dependency order; a failing file is named."""
    made = []
    d = Path(folder) if Path(folder).is_absolute() else SQL_ROOT / folder
    for name, stmt in read_folder(d):
        try:
            execute(con, stmt)
        except duckdb.Error as e:
            raise SqlFileError(d / f"{name}.sql", f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
        made.append(name)
    return made


# ------------------------------------------------------------------------- the warehouse's tables

def tables() -> list[str]:
    """Every table of ``sql/warehouse/``, in creation order."""
    return list(_tables())


@cache  # like read_statement's texts, read once per process: ordering them costs 30 ms of regexes
def _tables() -> tuple[str, ...]:
    return tuple(n for n, _ in read_folder(WAREHOUSE))


def columns(table: str) -> tuple[tuple[str, str], ...]:
    """((column, DuckDB type), ...) of a warehouse table, as its contract file defines them."""
    known = _contract_columns()
    if table not in known:
        load(WAREHOUSE, table)  # says what is wrong: no such file, or a file that creates another table
        raise SqlFileError(_path(WAREHOUSE, table), f"{table} is not a table of sql/{WAREHOUSE}/")
    return known[table]


@cache
def _contract_columns() -> dict[str, tuple[tuple[str, str], ...]]:
    """Every contract table's columns, read once per process from one in-memory database where
    every file of ``sql/warehouse/`` was run in creation order (a database per table took 0.5 s of
    every batch's start, on its critical path: the ingest's first step needs them)."""
    con = duckdb.connect()
    try:
        create_all(con, WAREHOUSE)
        rows = con.execute("SELECT table_name, list(column_name ORDER BY column_index), "
                           "list(data_type ORDER BY column_index) FROM duckdb_columns() WHERE "
                           "database_name = current_database() AND schema_name = 'main' AND table_name IN "
                           "(SELECT unnest(?)) GROUP BY table_name", [list(_tables())]).fetchall()
    finally:
        con.close()
    return {table: tuple(zip(cols, types)) for table, cols, types in rows}


def column_names(table: str) -> list[str]:
    return [c for c, _ in columns(table)]


@cache
def _depends(table: str) -> tuple[str, ...]:
    text = strip_comments(load(WAREHOUSE, table))
    return tuple(t for t in _tables() if t != table and re.search(rf"\b{t}\b", text))


def exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(execute(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
                             "AND schema_name = current_schema()", [table])[0][0])


def columns_of(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns a table of this warehouse has (of any table, the catalogue's raw_/stg_ included)."""
    return [r[0] for r in execute(con, "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                       "AND table_schema = current_schema() ORDER BY ordinal_position", [table])]


def _create(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Create one table (if absent). A table derived from another (model_hits from rule_hits) is
    made from it; a source created only for that is dropped again, so ensuring one table never
    leaves another behind."""
    scaffolding = [dep for dep in _depends(table) if not exists(con, dep)]
    for dep in _depends(table):
        ensure(con, dep)  # an existing source made by an earlier version gains the contract's columns
    execute(con, load(WAREHOUSE, table))
    for dep in scaffolding:
        execute(con, f"DROP TABLE {dep}")


def ensure(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Create the named tables if absent; add the contract's columns an existing one lacks."""
    for table in names:
        _create(con, table)
        have = {c for (c,) in execute(
            con, "SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND schema_name = current_schema()",
            [table])}
        for col, typ in columns(table):
            if col not in have:
                execute(con, f'ALTER TABLE {table} ADD COLUMN "{col}" {typ}')


def recreate(con: duckdb.DuckDBPyConnection, *names: str) -> None:
    """Drop and create the named per-batch tables, empty."""
    for table in names:
        execute(con, f"DROP TABLE IF EXISTS {table}")
        _create(con, table)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """One DuckDB transaction: committed when the block ends, rolled back when anything (Ctrl-C
    included) escapes it. DuckDB cannot nest transactions: the caller must not hold one open."""
    execute(con, "BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        try:
            execute(con, "ROLLBACK")
        except duckdb.Error:  # the connection was already closed or the transaction aborted
            pass
        raise
    execute(con, "COMMIT")


# DuckDB's own default is 80% of the machine's memory; the batch's process also holds polars
# frames (the ingest's, the scorer's) beside it, so DuckDB is given less. At 10M persons the rules
# then hold 8 GB instead of 14 GB, and take about 15% longer (README "Performance").
MEMORY_LIMIT_VAR = "SENTINEL_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "35%"


def configure(con: duckdb.DuckDBPyConnection) -> None:
    """A batch stage's connection: no progress bar; DuckDB's memory limit from
    ``$SENTINEL_DUCKDB_MEMORY_LIMIT`` (DuckDB's syntax: ``8GB``, ``35%`` of the machine's memory),
    by default 35%. DuckDB spills what does not fit to a temporary directory beside the warehouse."""
    con.execute("SET enable_progress_bar=false").fetchall()
    limit = os.environ.get(MEMORY_LIMIT_VAR, "").strip() or DEFAULT_MEMORY_LIMIT
    try:
        quoted = limit.replace("'", "")  # SET takes no parameter: a quote cannot end the literal
        con.execute(f"SET memory_limit='{quoted}'").fetchall()
    except duckdb.Error as e:
        raise RefusedInput(MEMORY_LIMIT_VAR, f"not a memory limit DuckDB understands ({limit!r}: write it as 8GB "
                                             f"or 35%): {str(e).splitlines()[0]}") from None


@contextmanager
def writer_lock(warehouse: Path):
    """The warehouse's one-writer lock, held by a batch from start to commit and by `sentinel
    feedback` while it records (a conclusion written while a batch runs would be lost when the batch
    renames its working copy over the warehouse): an exclusive, non-blocking ``flock`` on
    ``.<warehouse>.lock``; a second writer is refused (RefusedInput: exit 2). The operating system
    releases it when the process ends, however it ends: a killed batch leaves no stale lock."""
    warehouse = Path(warehouse)
    with _exclusive(warehouse, "another batch is running against this warehouse ({holder}); "
                               "try again when it has finished"):
        yield


@contextmanager
def output_lock(out: Path):
    """The output folder's one-writer lock, held by a batch from start to commit beside the
    warehouse's: two batches of two warehouses given one ``--out`` would stage their lists in one
    ``.<out>.batch`` and swap in each other's (a scratch replay beside the nightly run). The same
    ``flock``, on ``.<out>.lock`` beside the folder; the second batch is refused."""
    out = Path(out).absolute()
    with _exclusive(out, "another batch is writing its lists into this folder ({holder}); try again when it "
                         "has finished, or give this batch an --out of its own"):
        yield


@contextmanager
def _exclusive(path: Path, refusal: str):
    """An exclusive, non-blocking ``flock`` on ``.<name>.lock`` beside ``path`` (its folder made if
    need be), with this process's pid in it; held: RefusedInput(path, ``refusal`` with the holder).
    Beside the file or folder ``path`` names, its links and ``..`` resolved: one warehouse named two
    ways (`sentinel feedback` given a link to it while a batch runs) is one lock."""
    real = path.resolve()
    lock_path = real.with_name(f".{real.name}.lock")
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RefusedInput(path, f"cannot write its lock file {lock_path.name} beside it ({e.strerror}): "
                                 "the batch writes beside it; choose a writable folder") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise RefusedInput(path, refusal.format(holder=holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)


def register_policy(con: duckdb.DuckDBPyConnection) -> None:
    """POLICY.md's vocabularies as temp tables, for SQL that ranks or labels (they stay in policy.py):
    ``policy_severity(severity, label_zh, rank, score_floor)`` and ``policy_program(program_code, name_zh)``
    (read by the macro program_name, sql/shared/program_name.sql)."""
    from data_contracts.policy import PROGRAMS, SEVERITIES

    execute(con, "CREATE OR REPLACE TEMP TABLE policy_severity (severity VARCHAR PRIMARY KEY, label_zh VARCHAR, "
                 "rank INTEGER, score_floor DOUBLE)")
    con.executemany("INSERT INTO policy_severity VALUES (?, ?, ?, ?)",
                    [(k, v["label_zh"], v["rank"], v["score_floor"]) for k, v in SEVERITIES.items()])
    execute(con, "CREATE OR REPLACE TEMP TABLE policy_program (program_code VARCHAR PRIMARY KEY, name_zh VARCHAR)")
    con.executemany("INSERT INTO policy_program VALUES (?, ?)", list(PROGRAMS.items()))


# ------------------------------------------------------------------------- a batch's open database

_held: dict[str, duckdb.DuckDBPyConnection] = {}


def _key(path: str | Path) -> str:
    return str(Path(path).absolute())


def hold_open(path: str | Path) -> None:
    """Keep the database at `path` (a batch's working copy) open in this process until
    :func:`let_go`: every stage's :func:`connect` is then a connection of its own to that open
    database. Its catalogue and the blocks one stage read stay in DuckDB's cache for the next, and
    the stages' changes reach the file when it is closed (and whenever DuckDB's log passes its
    checkpoint threshold), not as each stage's connection closes: 0.3 s of a 1.8-s night where
    nothing new arrived (1M persons).

    DuckDB hands an open database back to whoever opens the same path again in the process. So
    that no one can reach this one but through :func:`connect`, and that no instance left open by
    mistake can ever be taken for the next batch's fresh copy (it would be the renamed warehouse,
    or a deleted file), it is opened with a configuration of its own (a user agent naming this
    hold): opening the path otherwise while it is held, or holding it again while an old instance
    lives, is refused by DuckDB with an error instead of silently sharing it."""
    if _key(path) in _held:
        return
    con = duckdb.connect(_key(path), config={"custom_user_agent": f"welfare-sentinel batch {uuid.uuid4().hex}"})
    try:
        configure(con)
    except BaseException:
        con.close()
        raise
    _held[_key(path)] = con


def let_go(path: str | Path, checkpoint: bool = False) -> bool:
    """Close what :func:`hold_open` held (after a CHECKPOINT, if asked); whether anything was held."""
    con = _held.pop(_key(path), None)
    if con is None:
        return False
    try:
        if checkpoint:
            con.execute("CHECKPOINT").fetchall()
    finally:
        con.close()
    return True


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection of its own to the database at `path`: to the open one while it is held (the
    batch's own working copy), else a new one. `read_only` on a held database (whose configuration
    DuckDB will not change for one connection): the cursor is in a read-only transaction, which
    refuses any write but to TEMP objects and ends, rolled back, when the cursor is closed. Being a
    transaction, it reads the database as it was when it began, and after a statement fails it
    refuses every other (a caller that catches an error and goes on needs a new connection)."""
    held = _held.get(_key(path))
    if held is not None:
        cursor = held.cursor()
        if read_only:
            cursor.execute("BEGIN TRANSACTION READ ONLY")
        return cursor
    return duckdb.connect(_key(path), read_only=read_only)
