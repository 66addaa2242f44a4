"""Ingest one landing directory (EXTRACTS.md) into the warehouse: the orchestration of the
ingest's jobs, each in a module of its own.

1. **Inspect** (:mod:`data_contracts.landing`, nothing written): every entry of the landing
   directory accounted for, each file's format, encoding, hash and header checked. Any refusal
   raises :class:`RefusedInput` before the warehouse is even opened, so it stays byte-for-byte
   as it was.
2. **Read and normalise**, extract by extract, in bulk: the files read as text
   (``landing.read_file``), typed (:mod:`data_contracts.normalise`), validated against the
   extract's pandera schema and sorted into the quarantine and the rows to load
   (:mod:`data_contracts.quarantine`).
3. **Load** (:mod:`data_contracts.load`) everything in one DuckDB transaction
   (``warehouse.transaction``): raw, staging, quarantine, file log, landing entries, re-sent and
   changed keys, counts per extract; any error rolls it back, including a snapshot refused for
   shrinking implausibly (:class:`Options`). Phases 2 and 3 overlap by one extract: the next
   extract is read and normalised in a worker thread while this one is written (largest extracts
   first; each file read by an in-memory DuckDB of its own, on one thread), unless the two would
   not fit in a quarter of the machine's memory side by side (a big city's largest extracts).

The batch's row in ``runs`` is the flow's (``flows/runs.py``): the ingest is given its batch id,
or, run on its own (tests, benchmarks), takes the next one (``load.next_batch_id``).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from data_contracts import load, warehouse
from data_contracts.errors import RefusedInput
from data_contracts.extracts import EXTRACTS, Extract, Limits
from data_contracts.landing import Entry, SourceFile, inspected, read_file
from data_contracts.load import ExtractCounts, Prepared
from data_contracts.normalise import normalise
from data_contracts.quarantine import sort_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What the operator may set for one batch (``ingest(..., **options)``)."""
    allow_shrink: frozenset[str] | bool = False  # snapshot extracts allowed to shrink tonight (True: all)
    min_snapshot_share: float = 0.9  # a snapshot with fewer rows than this share of the last one is refused
    limits: Limits = field(default_factory=Limits)  # the domain checks' bounds

    @classmethod
    def of(cls, allow_shrink: set[str] | frozenset[str] | list[str] | tuple[str, ...] | bool = False,
           min_snapshot_share: float = 0.9, limits: Limits | None = None) -> Options:
        if not isinstance(allow_shrink, bool):
            allow_shrink = frozenset(allow_shrink)
            unknown = sorted(e for e in allow_shrink if e not in EXTRACTS or not EXTRACTS[e].snapshot)
            if unknown:
                snapshots = ", ".join(e.name for e in EXTRACTS.values() if e.snapshot)
                raise RefusedInput("--accept-shrunk-snapshot", f"not a snapshot extract: {', '.join(unknown)} "
                                                                f"(one of {snapshots})")
        if not 0 <= min_snapshot_share <= 1:
            raise RefusedInput("--min-snapshot-share", f"must be between 0 and 1, not {min_snapshot_share}")
        return cls(allow_shrink, float(min_snapshot_share), limits or Limits())

    def may_shrink(self, extract: str) -> bool:
        return self.allow_shrink is True or (self.allow_shrink is not False and extract in self.allow_shrink)


@dataclass
class IngestResult:
    batch_id: int
    as_of: dt.date
    extracts: dict[str, ExtractCounts]
    seconds: float

    def summary(self) -> dict:
        """Counts only: safe for logs and Prefect artifacts."""
        return {"batch_id": self.batch_id, "as_of": self.as_of.isoformat(), "seconds": round(self.seconds, 2),
                "extracts": {k: vars(v) for k, v in self.extracts.items()}}


class _Clock:
    """Seconds per step, logged at DEBUG (counts and timings only)."""

    def __init__(self, label: str):
        self.label, self.t = label, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        log.debug("%s: %s %.2f s", self.label, step, now - self.t)
        self.t = now


def _reader() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that reads one file, as Arrow, closed once it is read: a connection kept
    open for the whole ingest held on to the memory it had read through (0.6 GB at 1M persons)."""
    reader = duckdb.connect()
    reader.execute("SET enable_progress_bar=false")
    # text as Arrow string views, the layout polars keeps strings in: no conversion on the way
    reader.execute("SET arrow_output_version='1.5'")
    reader.execute("SET produce_arrow_string_view=true")
    # one reader thread: it runs alongside the writer (the connection's threads), and a second
    # one buys little on two cores but costs CPU
    reader.execute("SET threads=1")
    return reader


def _prepare(extract: Extract, files: list[SourceFile], skip: set[str], batch_id: int, as_of: dt.date,
             limits: Limits, raw_folder: Path) -> Prepared:
    """Phase 2 for one extract (no warehouse access): read its files, normalise, validate, split
    into quarantine and loaded rows, keep the last row per key; the loaded rows as delivered go to
    a Parquet file of the raw folder, listed in the warehouse when the extract is written."""
    n = ExtractCounts(extract.name, delivered=True, files=len(files))
    clock = _Clock(extract.name)
    seen: set[str] = set()
    raws, rejects, file_rows = [], [], []
    for sf in files:
        dup = sf.sha256 in skip or sf.sha256 in seen
        seen.add(sf.sha256)
        if dup:
            n.files_skipped += 1
            log.info("%s: skipped, identical file already loaded", sf.rel)
            file_rows.append(load.file_row(batch_id, sf, "skipped", 0))
            continue
        with _reader() as con:
            df, rej = read_file(sf, con)
        raws.append(df)
        rejects.append(rej)
        file_rows.append(load.file_row(batch_id, sf, "loaded", df.height + rej.height))
    if not raws:
        return Prepared(n, file_rows)
    raw = pl.concat(raws, how="vertical")
    del raws
    rej = pl.concat(rejects, how="vertical")
    clock("read")
    norm = normalise(extract, raw, as_of, limits)
    clock("normalise")
    rows = sort_rows(extract, raw, norm, rej)
    del norm
    clock("validate, quarantine, dedupe")
    n.rows_read = raw.height + rej.height
    n.rows_quarantined = rows.quarantine.height
    n.rows_loaded = rows.raw.height
    raw_file = load.write_raw_file(raw_folder, extract, batch_id, rows.raw)
    clock("raw rows to Parquet")
    # string views as polars holds them: no copy, and DuckDB scans them faster than large strings
    newest = pl.CompatLevel.newest()
    changed = rows.changed.to_arrow() if rows.changed is not None else None
    out = Prepared(n, file_rows, rows.quarantine.to_arrow(compat_level=newest), raw_file, rows.raw.height,
                   rows.stg.to_arrow(compat_level=newest), changed)
    clock("to Arrow")
    return out


# What preparing an extract holds in memory per byte of its files (its text, its normalised values,
# their Arrow tables, polars' working copies): about 7, measured at 1M and 10M persons.
IN_MEMORY_PER_BYTE = 7
# The share of the machine's memory two extracts may hold side by side, the one being written and
# the next being prepared: at 10M persons the largest two would take 11 GB together.
SIDE_BY_SIDE_SHARE = 0.25


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _side_by_side(this: int, following: int) -> bool:
    """Whether the next extract (``following`` bytes to read) may be prepared while this one
    (``this`` bytes read) is written: whether both fit in :data:`SIDE_BY_SIDE_SHARE` of the memory."""
    return (this + following) * IN_MEMORY_PER_BYTE <= SIDE_BY_SIDE_SHARE * _machine_memory()


def _check_shrink(extract: Extract, files: list[SourceFile], p: Prepared, last: int, opts: Options) -> None:
    """Refuse a snapshot that shrinks implausibly (EXTRACTS.md), unless the operator confirmed it."""
    if not extract.snapshot or p.stg is None:
        return
    rows = p.stg.num_rows
    if rows > 0 and rows >= opts.min_snapshot_share * last:
        return
    what = (f"no loadable row ({p.counts.rows_read} read, {p.counts.rows_quarantined} quarantined)" if rows == 0 else
            f"{rows:,} loadable rows")
    where = ", ".join(sf.rel for sf in files)
    if opts.may_shrink(extract.name):
        log.warning("%s: snapshot %s has %s (last snapshot: %d rows); accepted by the operator",
                    where, extract.name, what, last)
        return
    if last == 0:  # a first delivery: nothing to shrink from, but a register of no row is no register
        raise RefusedInput(where, f"snapshot {extract.name} has {what}: a snapshot is the whole register; nothing "
                                  f"was changed. If the register really is empty, confirm with "
                                  f"--accept-shrunk-snapshot {extract.name}")
    raise RefusedInput(where, f"snapshot {extract.name} has {what} against {last:,} rows in the last snapshot "
                              f"(at least {opts.min_snapshot_share:.0%} of them expected); nothing was changed. If "
                              f"the register really shrank, confirm with --accept-shrunk-snapshot {extract.name}")


def ingest(input_dir: Path | str, warehouse_file: Path | str, as_of: dt.date, batch_id: int | None = None,
           **options) -> IngestResult:
    """Ingest a landing directory into the warehouse file as one new batch. A refusal is raised
    before the file is opened (or created), so it stays byte for byte as it was; a snapshot
    refused for shrinking (:class:`Options`) is refused inside the batch's transaction, which is
    rolled back. ``options``: ``allow_shrink``, ``min_snapshot_share``, ``limits``."""
    t0 = time.perf_counter()
    opts = Options.of(**options)
    with inspected(input_dir) as (found, entries):
        Path(warehouse_file).parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(warehouse_file)) as con:
            return _load(con, found, entries, as_of, batch_id, t0, opts, load.raw_folder(warehouse_file))


def ingest_into(con: duckdb.DuckDBPyConnection, input_dir: Path | str, as_of: dt.date, batch_id: int | None = None,
                raw_folder: Path | str | None = None, **options) -> IngestResult:
    """The ingest stage on an open connection (DEVELOPERS.md stage interface): inspect everything,
    then write batch ``batch_id`` (the flow's, from ``runs``) in one transaction on ``con``;
    returns its counts. ``raw_folder``: the warehouse's (``load.raw_folder``); by default the one
    beside the file ``con`` has open. The flow, whose connection is on a working copy, names it."""
    t0 = time.perf_counter()
    opts = Options.of(**options)
    folder = Path(raw_folder) if raw_folder is not None else load.raw_folder(_database_file(con))
    with inspected(input_dir, skipped=_re_deliveries(con), known=_hashed_before(con)) as (found, entries):
        return _load(con, found, entries, as_of, batch_id, t0, opts, folder)


def _database_file(con: duckdb.DuckDBPyConnection) -> Path:
    (path,) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0]
    if not path:
        raise ValueError("an in-memory warehouse has no raw folder beside it: pass raw_folder")
    if Path(path).name.startswith(".") and Path(path).name.endswith(".batch"):
        # a batch's working copy (flows.batch.WorkingCopy): its files belong beside the warehouse
        raise ValueError(f"{Path(path).name} is a batch's working copy: pass the warehouse's raw_folder")
    return Path(path)


def _re_deliveries(con: duckdb.DuckDBPyConnection):
    """The files the ingest will skip as re-deliveries (``load.already_loaded``), for the inspection:
    it need not transcode them again. Nothing for a warehouse that has loaded nothing yet."""
    if not warehouse.exists(con, "ingested_files"):
        return lambda extract, files: set()
    return lambda extract, files: load.already_loaded(con, EXTRACTS[extract], files)


def _hashed_before(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(file, stat) -> (sha256, encoding) of every file the warehouse recorded with its stat
    (``landing.inspect_file``): a re-delivered file left in place is not read again to be recognised
    (0.25 s a night per 280 MB, a 1M-person city's delivery)."""
    if not warehouse.exists(con, "ingested_files") or "stat" not in warehouse.columns_of(con, "ingested_files"):
        return {}
    rows = con.execute("SELECT file, stat, arg_max(sha256, batch_id), arg_max(encoding, batch_id) FROM ingested_files "
                       "WHERE stat IS NOT NULL GROUP BY file, stat").fetchall()
    return {(f, st): (sha, enc) for f, st, sha, enc in rows}


def _load(wcon: duckdb.DuckDBPyConnection, found: dict[str, list[SourceFile]], entries: list[Entry],
          as_of: dt.date, batch_id: int | None, t0: float, opts: Options, raw_folder: Path) -> IngestResult:
    """Phases 2 and 3: read, normalise, validate and write every extract in one transaction."""
    order = wcon.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    try:
        wcon.execute("SET enable_progress_bar=false")
        # row order in the warehouse carries no meaning (_file, _line do); unordered inserts
        # run in parallel, about twice as fast
        wcon.execute("SET preserve_insertion_order=false")
        with warehouse.transaction(wcon):
            load.ensure_tables(wcon)
            batch_id = batch_id or load.next_batch_id(wcon)
            load.move_raw_tables(wcon, raw_folder, batch_id)
            removed = load.tidy_raw_folder(wcon, raw_folder)
            if removed:
                log.info("raw folder: %d files the warehouse does not list removed", removed)
            # what an earlier batch changed was read by that batch's rules: only tonight's changes are kept
            wcon.execute("DELETE FROM changed_subjects WHERE batch_id <> ?", [batch_id])
            counts = {name: ExtractCounts(name) for name in EXTRACTS}
            skips = {name: load.already_loaded(wcon, EXTRACTS[name], files) for name, files in found.items()}
            last_rows = {name: load.staged_rows(wcon, EXTRACTS[name]) for name in found if EXTRACTS[name].snapshot}
            file_status: dict[str, str] = {}
            versions: list[tuple] = []
            # largest first: the write of one big extract overlaps the preparation of the next big one
            todo = sorted((name for name in EXTRACTS if name in found),
                          key=lambda name: -sum(sf.size for sf in found[name]))
            # a pipeline of two: the next extract is read and normalised (polars, DuckDB reader)
            # in a worker thread while this one is written (both release the GIL), when both fit
            # in memory side by side (_side_by_side); else the next once this one is written
            read = {name: sum(sf.size for sf in found[name] if sf.sha256 not in skips[name]) for name in todo}
            with ThreadPoolExecutor(max_workers=1) as pool:
                def submit(name: str):
                    return pool.submit(_prepare, EXTRACTS[name], found[name], skips[name], batch_id, as_of,
                                       opts.limits, raw_folder)

                future = submit(todo[0]) if todo else None
                for i, name in enumerate(todo):
                    prepared = future.result()
                    nxt = todo[i + 1] if i + 1 < len(todo) else None
                    future = submit(nxt) if nxt and _side_by_side(read[name], read[nxt]) else None
                    _check_shrink(EXTRACTS[name], found[name], prepared, last_rows.get(name, 0), opts)
                    load.write_extract(wcon, EXTRACTS[name], prepared, batch_id, _Clock(name))
                    if nxt and future is None:
                        future = submit(nxt)
                    counts[name] = prepared.counts
                    file_status.update({r[2]: r[7] for r in prepared.file_rows})
                    if not EXTRACTS[name].snapshot and prepared.stg is not None:
                        versions.append((batch_id, name, prepared.keys_resent, prepared.keys_changed))
                    del prepared
            for name, c in counts.items():
                log.info("%s: %d files (%d skipped), %d rows read, %d loaded, %d quarantined", name, c.files,
                         c.files_skipped, c.rows_read, c.rows_loaded, c.rows_quarantined)
            load.write_record(wcon, batch_id, counts, versions, found, entries, file_status)
            for name in load.write_raw_views(wcon, raw_folder):
                log.warning("raw_%s: some of its files are not in %s (was the warehouse copied without its raw "
                            "folder?); the view shows the rows of the files that are", name, raw_folder)
    finally:
        wcon.execute(f"SET preserve_insertion_order={'true' if str(order).lower() == 'true' else 'false'}")
    return IngestResult(batch_id, as_of, counts, time.perf_counter() - t0)
