"""Ingest one landing directory (EXTRACTS.md) into the warehouse (DEVELOPERS.md table contract).

Plain functions, no Prefect. Three phases:

1. **Inspect** (nothing is written): discover every extract's files, refuse an unknown
   format, detect each CSV's encoding (strict UTF-8 with or without BOM, else GB18030,
   transcoded to a temporary UTF-8 copy in 4 MB chunks because DuckDB cannot read GB18030),
   hash it (sha256), and map its header (canonical names or Chinese aliases, ignoring
   surrounding spaces, case and full-width forms) to canonical columns; a missing required
   column refuses the batch. Any refusal raises :class:`RefusedInput` before the warehouse
   is even opened, so it stays byte-for-byte as it was.
2. **Read and normalise**, extract by extract, in bulk: DuckDB ``read_csv`` (all columns as
   text, explicit dialect) or ``read_parquet`` into Arrow/polars; rows DuckDB cannot split
   into the header's columns are quarantined from its rejects table; values normalised with
   polars, column by column (once per distinct value where values repeat, a cheap exact path for
   values already in a canonical layout, the full cleaner for the rest); the pandera model
   validates the collected frame (``lazy=True``) and failing rows are quarantined with file,
   line and reason.
3. **Write** everything in one DuckDB transaction (raw, staging, quarantine, file log, run
   counts); any error rolls it back. Phases 2 and 3 overlap by one extract: the next extract
   is read and normalised in a worker thread while this one is written (largest extracts first;
   the reader on one DuckDB thread).

Re-delivery (decision): a file whose sha256 was already loaded for the same extract is
skipped (recorded in ``ingested_files`` with status ``skipped``; its rows are not read
again, so it adds nothing to raw, staging or the counts). A snapshot extract whose set of
files is identical to the snapshot currently loaded is skipped as a whole. Raw tables of
snapshot extracts hold the current delivery (replaced with staging); raw tables of
incremental extracts are append-only history.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import io
import logging
import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandera.polars as pa
import polars as pl
import pyarrow
import pyarrow.parquet as pq

from data_contracts.errors import RefusedInput
from data_contracts.extracts import EXTRACTS, Extract
from data_contracts.ids import clean_id, fold_fullwidth, id_valid, mask_id, upgrade_legacy
from data_contracts.normalise import PARSERS, clean_name, clean_sex, clean_text
from data_contracts.schemas import MODELS

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
CHUNK = 4 * 1024 * 1024
STG_TYPES = {
    "id": "VARCHAR", "text": "VARCHAR", "name": "VARCHAR", "sex": "VARCHAR", "period": "VARCHAR",
    "date": "DATE", "datetime": "TIMESTAMP", "amount": "DECIMAL(18,2)",
}
LINEAGE = {"_batch_id": "BIGINT", "_file": "VARCHAR", "_line": "BIGINT"}
CLEANERS = {"id": clean_id, "name": clean_name, "sex": clean_sex, "text": clean_text, **PARSERS}


# ---------------------------------------------------------------------------- phase 1: inspect

@dataclass
class SourceFile:
    extract: str
    path: Path  # as delivered
    rel: str  # relative to the landing directory (lineage)
    fmt: str  # csv or parquet
    size: int = 0
    sha256: str = ""
    encoding: str | None = None  # utf-8, utf-8-sig, gb18030 (csv only)
    read_path: Path | None = None  # what DuckDB reads: the file, or its UTF-8 transcode
    columns: list[str | None] = field(default_factory=list)  # canonical name per position
    source_names: list[str] = field(default_factory=list)  # header as delivered


def _fold_header(text: str) -> str:
    return pl.select(fold_fullwidth(pl.lit(text))).item().strip().casefold()


def alias_map(extract: Extract) -> dict[str, str]:
    """Folded header spelling -> canonical column name."""
    out: dict[str, str] = {}
    for c in extract.columns:
        for spelling in (c.name, *c.aliases):
            out[_fold_header(spelling)] = c.name
    return out


def discover(input_dir: Path) -> dict[str, list[SourceFile]]:
    """Files per delivered extract, in a stable order (sorted by relative path): a later file
    wins over an earlier one when both carry the same key."""
    if not input_dir.is_dir():
        raise RefusedInput(str(input_dir), "landing directory does not exist or is not a directory")
    found: dict[str, list[SourceFile]] = {}

    def add(extract: str, p: Path) -> None:
        ext = p.name.rsplit(".", 1)[-1].lower() if "." in p.name else ""
        if ext not in FORMATS:
            raise RefusedInput(str(p), f"unknown format {p.suffix or '(no extension)'!r} for extract "
                                       f"{extract}: expected .csv or .parquet")
        found.setdefault(extract, []).append(SourceFile(extract, p, str(p.relative_to(input_dir)), ext))

    for p in sorted(input_dir.iterdir()):
        if p.name.startswith("."):
            continue
        for name in EXTRACTS:
            if p.is_dir() and p.name == name:
                for q in sorted(p.iterdir()):
                    if q.name.startswith("."):
                        continue
                    if q.is_dir():
                        raise RefusedInput(str(q), "unexpected directory inside an extract directory")
                    add(name, q)
                break
            stem = p.name.split(".", 1)[0]
            if p.is_file() and (stem == name or p.name.startswith(name + "-")):
                add(name, p)
                break
        else:
            log.info("ignoring %s: not an extract", p.name)
    for name, e in EXTRACTS.items():
        if e.required and not found.get(name):
            raise RefusedInput(str(input_dir / name), f"required extract {name} was not delivered")
    for files in found.values():
        files.sort(key=lambda f: f.rel)
    return found


def transcode_gb18030(src: Path, dst: Path) -> None:
    """Stream a GB18030 file into a UTF-8 copy, 4 MB at a time (strict: raises UnicodeDecodeError)."""
    dec = codecs.getincrementaldecoder("gb18030")("strict")
    with open(src, "rb") as f, open(dst, "w", encoding="utf-8", newline="") as g:
        first = True
        while chunk := f.read(CHUNK):
            text = dec.decode(chunk)
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = False
            g.write(text)
        g.write(dec.decode(b"", final=True))


def _utf8_boundary(buf: bytes) -> int:
    """Where a UTF-8 sequence cut off by the end of ``buf`` starts (``len(buf)`` when none is)."""
    for k in range(1, min(4, len(buf)) + 1):
        b = buf[-k]
        if b & 0xC0 != 0x80:  # ASCII or a lead byte
            need = 1 if b < 0x80 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return len(buf) - k if need > k else len(buf)
    return len(buf)


def _valid_utf8(buf: bytes) -> bool:
    """Strict UTF-8 (what ``bytes.decode('utf-8')`` accepts), checked without building a str."""
    try:
        pl.Series([buf], dtype=pl.Binary).cast(pl.String)
        return True
    except pl.exceptions.ComputeError:
        return False


def _detect_and_hash(sf: SourceFile, tmp: Path) -> None:
    """sha256 and encoding in one streaming pass; GB18030 transcoded to a UTF-8 temp file."""
    h = hashlib.sha256()
    utf8, carry = True, b""
    with open(sf.path, "rb") as f:
        head = f.read(3)
        bom = head == codecs.BOM_UTF8
        f.seek(0)
        while chunk := f.read(CHUNK):
            h.update(chunk)
            if utf8:  # a sequence cut by the chunk's end is checked with the next chunk
                buf = carry + chunk if carry else chunk
                cut = _utf8_boundary(buf)
                utf8, carry = _valid_utf8(buf[:cut]), buf[cut:]
        if carry:
            utf8 = False
    sf.sha256 = h.hexdigest()
    if utf8:
        sf.encoding = "utf-8-sig" if bom else "utf-8"
        sf.read_path = sf.path
        return
    out = tmp / f"{len(list(tmp.iterdir()))}-{sf.path.name}"
    try:
        transcode_gb18030(sf.path, out)
    except UnicodeDecodeError as e:
        raise RefusedInput(sf.rel, f"cannot be decoded as UTF-8 or GB18030 (byte offset about {e.start})") from None
    sf.encoding = "gb18030"
    sf.read_path = out


def _safe_label(text: str) -> str:
    """A header cell for a log line; masked when it looks like data (a long digit run could be an
    ID number from a file whose first line is not a header)."""
    return mask_id(text) if re.search(r"\d{6,}", text) else repr(text)


def _map_header(sf: SourceFile, names: list[str]) -> None:
    e = EXTRACTS[sf.extract]
    aliases = alias_map(e)
    cols: list[str | None] = []
    seen: dict[str, str] = {}
    for n in names:
        canon = aliases.get(_fold_header(n))
        if canon is not None:
            if canon in seen:
                raise RefusedInput(sf.rel, f"columns {_safe_label(seen[canon])} and {_safe_label(n)} both mean {canon}")
            seen[canon] = n
        cols.append(canon)
    if not seen:
        raise RefusedInput(sf.rel, "no header row: the first line names none of the extract's columns")
    for c in e.columns:
        if c.name not in seen and not c.optional:
            spellings = ", ".join(c.aliases)
            raise RefusedInput(sf.rel, f"missing required column {c.name} ({spellings})")
    unknown = [_safe_label(n) for n, c in zip(names, cols) if c is None]
    if unknown:
        log.warning("%s: ignoring columns not in the contract: %s", sf.rel, ", ".join(unknown))
    sf.columns, sf.source_names = cols, names


def inspect(sf: SourceFile, tmp: Path) -> None:
    """Phase 1 for one file: refuse it, or fill in encoding, hash and column mapping."""
    sf.size = sf.path.stat().st_size
    if sf.fmt == "parquet":
        h = hashlib.sha256()
        with open(sf.path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        sf.sha256 = h.hexdigest()
        try:
            names = pq.read_schema(sf.path).names
        except Exception as ex:  # noqa: BLE001 -- any failure to open is a refusal
            raise RefusedInput(sf.rel, f"not a readable Parquet file ({type(ex).__name__})") from None
        sf.read_path = sf.path
        _map_header(sf, names)
        return
    _detect_and_hash(sf, tmp)
    with open(sf.read_path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
    if not first.strip():
        raise RefusedInput(sf.rel, "empty file: no header row")
    names = next(csv.reader(io.StringIO(first)))
    _map_header(sf, names)


# ---------------------------------------------------------------------------- phase 2: read

def _pl(con: duckdb.DuckDBPyConnection, query: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(query).to_arrow_table())


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def read_file(sf: SourceFile, con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The file's rows as text with canonical names, ``_file`` and ``_line``; and the rows
    DuckDB could not split (``_file``, ``_line``, ``reason``, ``record``)."""
    e = EXTRACTS[sf.extract]
    rejects = pl.DataFrame(schema={"_line": pl.Int64, "reason": pl.String, "record": pl.String})
    path = _sql_str(str(sf.read_path))
    if sf.fmt == "parquet":
        sel = ", ".join(f'CAST("{src}" AS VARCHAR) AS "{c}"' for src, c in zip(sf.source_names, sf.columns) if c)
        try:
            df = _pl(con, f"SELECT {sel} FROM read_parquet({path})")
        except duckdb.Error as ex:
            raise RefusedInput(sf.rel, f"Parquet file cannot be read ({type(ex).__name__})") from None
        df = df.with_columns(_line=pl.int_range(2, pl.len() + 2, dtype=pl.Int64))
    else:
        cols = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(sf.columns))) + "}"
        sel = ", ".join(f'c{i} AS "{c}"' for i, c in enumerate(sf.columns) if c)
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        try:
            df = _pl(con,
                f"SELECT {sel} FROM read_csv({path}, header=true, auto_detect=false, columns={cols}, "
                f"delim=',', quote='\"', escape='\"', encoding='utf-8', ignore_errors=true, store_rejects=true)"
            )
            rej = _pl(con,
                "SELECT line::BIGINT AS _line, 'malformed CSV row: ' || lower(min(error_type)) AS reason, "
                "min(csv_line) AS record FROM reject_errors GROUP BY line ORDER BY line")
        except duckdb.Error as ex:
            raise RefusedInput(sf.rel, f"CSV cannot be read ({type(ex).__name__})") from None
        if rej.height:
            rejects = rej
        # DuckDB's reject line numbers count records with the header as line 1; the loaded
        # rows take the remaining line numbers in order.
        total = df.height + rejects.height
        lines = pl.int_range(2, total + 2, dtype=pl.Int64, eager=True)
        if rejects.height:
            lines = lines.filter(~lines.is_in(rejects["_line"].implode()))
        df = df.with_columns(_line=lines)
    for c in e.columns:  # optional columns not delivered
        if c.name not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(c.name))
    df = df.select(*e.column_names, pl.lit(sf.rel).alias("_file"), "_line")
    rejects = rejects.select(pl.lit(sf.rel).alias("_file"), "_line", "reason", "record")
    return df, rejects


def _few_distinct(s: pl.Series) -> bool:
    """At most a quarter of the values distinct? A strided sample of about 16,000 values settles
    the clear cases (codes and townships; keys and ID numbers); HyperLogLog over the whole column
    the others. Only speed depends on the answer, never a value."""
    sample = s.gather_every(max(1, s.len() // 16_384))
    share = sample.n_unique() / sample.len()
    if share < 0.02 or share > 0.9:
        return share < 0.02
    return s.approx_n_unique() * 4 <= s.len()


def _via_distinct(s: pl.Series, fn) -> pl.Series | None:
    """``fn`` applied to the distinct values of a low-cardinality column and mapped back (dates,
    periods, codes, townships repeat a lot); None when the column is mostly distinct."""
    if s.len() < 20_000 or not _few_distinct(s):
        return None
    u = s.unique()
    mapped = pl.DataFrame({"v": u}).select(fn(pl.col("v")))[:, 0]
    if mapped.dtype == s.dtype:  # text: most values come out as they went in
        changed = mapped.ne_missing(u)
        if not changed.any():
            return s
        return s.replace(u.filter(changed), mapped.filter(changed)).alias(s.name)
    return s.replace_strict(u, mapped, return_dtype=mapped.dtype).alias(s.name)


def _apply(s: pl.Series, fn) -> pl.Series:
    """``fn`` on every value of ``s`` (through its distinct values when they repeat a lot)."""
    mapped = _via_distinct(s, fn)
    return mapped if mapped is not None else pl.DataFrame({"v": s}).select(fn(pl.col("v")))[:, 0]


_FW = "\uff01-\uff5e\u3000"  # what fold_fullwidth rewrites
_SEP = "•.・‧∙⋅"  # what clean_name folds to ·


def _to_date(fmt: str):
    return lambda s: s.str.to_date(fmt, strict=False)


def _to_datetime(fmt: str):
    return lambda s: s.str.to_datetime(fmt, strict=False, time_unit="us")


# Layouts in which most delivered values arrive, each with a cheap operation that gives exactly
# what the kind's full cleaner gives for a value in that layout (no full-width character to fold,
# no surrounding or repeated whitespace to trim, no separator to fold, digits in fixed places).
# Tried in order on the values the earlier layouts did not match; the rest go through the full
# cleaner. Null stays null either way.
PLAIN: dict[str, tuple[tuple[str, object], ...]] = {
    "text": ((rf"^[^\s{_FW}](?:[^{_FW}]*[^\s{_FW}])?$", lambda s: s),),
    "name": ((rf"^[^\s{_FW}{_SEP}](?:[^{_FW}{_SEP}]*[^\s{_FW}{_SEP}])?$", lambda s: s),),
    "id": ((r"^[0-9]{17}[0-9X]$", lambda s: s),),
    "date": ((r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", _to_date("%Y-%m-%d")),
             (r"^[0-9]{8}$", _to_date("%Y%m%d")),
             (r"^[0-9]{4}/[0-9]{1,2}/[0-9]{1,2}$", _to_date("%Y/%m/%d"))),
    "datetime": ((r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$", _to_datetime("%Y-%m-%d %H:%M:%S")),
                 (r"^[0-9]{4}/[0-9]{2}/[0-9]{2} [0-9]{2}:[0-9]{2}$", _to_datetime("%Y/%m/%d %H:%M"))),
}


def _layered(s: pl.Series, fn, layouts) -> pl.Series:
    if not layouts:
        return _apply(s, fn)
    (pattern, cheap), more = layouts[0], layouts[1:]
    rest = (~s.str.contains(pattern).fill_null(True)).arg_true()
    out = cheap(s)
    if rest.len():
        out = out.clone().scatter(rest, _layered(s.gather(rest), fn, more))  # a copy: never write into raw
    return out


def normalise_column(s: pl.Series, kind: str) -> pl.Series:
    """``s`` (text as delivered) normalised as its kind says: the same values as the kind's
    cleaner (``clean_id``, ``clean_text``, ``parse_date``, ...) applied to every row, computed
    once per distinct value when values repeat a lot (dates, periods, amounts), else cheaply for
    values in a canonical layout (:data:`PLAIN`) and with the full cleaner for the others."""
    fn = CLEANERS[kind]
    layouts = PLAIN.get(kind, ())
    if kind != "id":
        mapped = _via_distinct(s, fn)
        if mapped is not None:
            return mapped.alias(s.name)
    return _layered(s, fn, layouts).alias(s.name)


def normalise(extract: Extract, raw: pl.DataFrame, as_of: dt.date) -> pl.DataFrame:
    """Normalised values (DEVELOPERS.md staging types) plus ``c_valid`` and ``c__unparseable``
    companions, row for row with ``raw``.

    Column by column (:func:`normalise_column`): values already in canonical form take a cheap
    path, the others the full cleaner once per distinct value. Companion flags are computed from
    the materialised values, and ``__unparseable`` only looks at the (few) rows whose value is null.
    """
    out: dict[str, pl.Series] = {}
    for c in extract.columns:
        s = raw[c.name]
        n = normalise_column(s, c.kind)
        if c.kind == "id":
            # legacy 15-digit numbers upgraded on the cleaned column, only on the rows with 15 characters
            idx = (n.str.len_chars() == 15).arg_true()
            if idx.len():
                up = pl.DataFrame({"v": n.gather(idx)}).select(upgrade_legacy(pl.col("v")))[:, 0]
                n = n.clone().scatter(idx, up)
        out[c.name] = n
        if c.kind == "id":
            valid = _via_distinct(n, lambda e: id_valid(e, as_of))
            if valid is None:
                valid = pl.DataFrame({"v": n}).select(id_valid(pl.col("v"), as_of))[:, 0]
            out[f"{c.name}_valid"] = valid.fill_null(False).alias(f"{c.name}_valid")
        elif c.kind in PARSERS:
            # delivered (not only whitespace) but parsed as nothing
            flag = pl.zeros(s.len(), dtype=pl.Boolean, eager=True)
            cand = (n.is_null() & s.is_not_null()).arg_true()
            if cand.len():
                delivered = s.gather(cand).str.contains(r"[^\s\u3000]").fill_null(False)
                flag = flag.scatter(cand.filter(delivered), True)
            out[f"{c.name}__unparseable"] = flag.alias(f"{c.name}__unparseable")
    return pl.DataFrame([*out.values(), raw["_file"], raw["_line"]])


def quarantine_reasons(extract: Extract, norm: pl.DataFrame) -> pl.DataFrame:
    """Validate with the extract's pandera model; one row (``index``, ``reason``) per failing row."""
    model = MODELS[extract.name]
    try:
        model.validate(norm, lazy=True)
        return pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String})
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
    if fc.filter(pl.col("index").is_null()).height:  # a schema-level failure is a bug, not bad data
        raise RuntimeError(f"{extract.name}: schema failure {fc.filter(pl.col('index').is_null())}")
    kinds = {c.name: c.kind for c in extract.columns}
    fc = fc.select(pl.col("index").cast(pl.Int64), "column", "check").unique()
    unparseable = fc.filter(pl.col("column").str.ends_with("__unparseable")).select(
        "index", pl.col("column").str.strip_suffix("__unparseable").alias("base"))
    # a value that was delivered but unparseable also fails not_nullable: report it once
    fc = fc.join(unparseable.with_columns(dup=pl.lit(True)), left_on=["index", "column"],
                 right_on=["index", "base"], how="left").filter(pl.col("dup").is_null())
    base = pl.col("column").str.strip_suffix("__unparseable")
    kind = base.replace_strict(kinds, default="text")
    reason = (
        pl.when(pl.col("column").str.ends_with("__unparseable"))
        .then(pl.lit("unparseable ") + kind + pl.lit(": ") + base)
        .when((pl.col("check") == "not_nullable") & pl.col("column").is_in(list(extract.key)))
        .then(pl.lit("no key: ") + pl.col("column"))
        .when(pl.col("check") == "not_nullable")
        .then(pl.lit("required value empty: ") + pl.col("column"))
        .otherwise(pl.lit("invalid ") + pl.col("column") + pl.lit(": ") + pl.col("check"))
    )
    return (fc.select("index", reason.alias("reason")).unique().sort("index", "reason")
            .group_by("index", maintain_order=True).agg(pl.col("reason").str.join("; ")))


# ---------------------------------------------------------------------------- phase 3: write

def ddl(extract: Extract) -> list[str]:
    raw_cols = [f'"{c}" VARCHAR' for c in extract.column_names]
    stg_cols = []
    for c in extract.columns:
        stg_cols.append(f'"{c.name}" {STG_TYPES[c.kind]}')
        if c.kind == "id":
            stg_cols.append(f'"{c.name}_valid" BOOLEAN')
    lineage = [f"{k} {v}" for k, v in LINEAGE.items()]
    return [
        f"CREATE TABLE IF NOT EXISTS raw_{extract.name} ({', '.join(raw_cols + lineage)})",
        f"CREATE TABLE IF NOT EXISTS stg_{extract.name} ({', '.join(stg_cols + lineage)})",
    ]


COMMON_DDL = [
    """CREATE TABLE IF NOT EXISTS runs (
        batch_id BIGINT PRIMARY KEY, as_of DATE NOT NULL, started_at TIMESTAMP, finished_at TIMESTAMP,
        outcome VARCHAR, input_dir VARCHAR, files BIGINT, files_skipped BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT,
        warnings_new BIGINT, warnings_open BIGINT, warnings_resolved BIGINT)""",
    """CREATE TABLE IF NOT EXISTS run_extracts (
        batch_id BIGINT, extract VARCHAR, delivered BOOLEAN, files BIGINT, files_skipped BIGINT,
        rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT)""",
    """CREATE TABLE IF NOT EXISTS ingested_files (
        batch_id BIGINT, extract VARCHAR, file VARCHAR, format VARCHAR, encoding VARCHAR,
        bytes BIGINT, sha256 VARCHAR, status VARCHAR, rows_read BIGINT)""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        batch_id BIGINT, extract VARCHAR, file VARCHAR, line BIGINT, reason VARCHAR, record VARCHAR)""",
]


@dataclass
class ExtractCounts:
    extract: str
    delivered: bool = False
    files: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0


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


def _already_loaded(con, extract: Extract, files: list[SourceFile]) -> set[str]:
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


class _Clock:
    """Seconds per step, logged at DEBUG (counts and timings only)."""

    def __init__(self, label: str):
        self.label, self.t = label, time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        log.debug("%s: %s %.2f s", self.label, step, now - self.t)
        self.t = now


@dataclass
class Prepared:
    """One extract read, normalised and validated, ready to be written (Arrow tables)."""
    counts: ExtractCounts
    file_rows: list[tuple]
    quarantine: pyarrow.Table | None = None
    raw: pyarrow.Table | None = None
    stg: pyarrow.Table | None = None


def _prepare(con: duckdb.DuckDBPyConnection, extract: Extract, files: list[SourceFile], skip: set[str],
             batch_id: int, as_of: dt.date) -> Prepared:
    """Phase 2 for one extract (no warehouse access): read its files, normalise, validate, split
    into quarantine and loaded rows, keep the last row per key."""
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
            file_rows.append((batch_id, extract.name, sf.rel, sf.fmt, sf.encoding, sf.size, sf.sha256, "skipped", 0))
            continue
        df, rej = read_file(sf, con)
        raws.append(df)
        rejects.append(rej)
        file_rows.append((batch_id, extract.name, sf.rel, sf.fmt, sf.encoding, sf.size, sf.sha256, "loaded",
                          df.height + rej.height))
    if not raws:
        return Prepared(n, file_rows)
    raw = pl.concat(raws, how="vertical")
    del raws
    rej = pl.concat(rejects, how="vertical")
    clock("read")
    norm = normalise(extract, raw, as_of)
    clock("normalise")
    bad = quarantine_reasons(extract, norm)
    clock("validate")
    value_cols = extract.column_names
    q = pl.concat([
        raw[bad["index"]].with_columns(reason=bad["reason"])
        .select("_file", "_line", "reason", pl.struct(value_cols).struct.json_encode().alias("record")),
        rej.select("_file", "_line", "reason", "record"),
    ])
    n.rows_read = raw.height + rej.height
    n.rows_quarantined = q.height
    good_raw, good = raw, norm.drop(c for c in norm.columns if c.endswith("__unparseable"))
    del norm
    if bad.height:
        ok_mask = ~pl.int_range(0, raw.height, dtype=pl.Int64, eager=True).is_in(bad["index"].implode())
        good_raw, good = good_raw.filter(ok_mask), good.filter(ok_mask)
    n.rows_loaded = good.height
    # within one batch the later file/line wins (files are in sorted order, lines ascending); a
    # single key is usually unique already, which is cheaper to see than to filter
    if len(extract.key) > 1 or good[extract.key[0]].n_unique() < good.height:
        key = pl.col(extract.key[0]) if len(extract.key) == 1 else pl.struct(extract.key)
        good = good.filter(key.is_last_distinct())
    # string views as polars holds them: no copy, and DuckDB scans them faster than large strings
    newest = pl.CompatLevel.newest()
    out = Prepared(n, file_rows, q.to_arrow(compat_level=newest), good_raw.to_arrow(compat_level=newest),
                   good.to_arrow(compat_level=newest))
    clock("quarantine, dedupe, to Arrow")
    return out


def _write(wcon: duckdb.DuckDBPyConnection, extract: Extract, p: Prepared, batch_id: int) -> None:
    """Phase 3 for one extract, inside the batch's transaction."""
    clock = _Clock(extract.name)
    wcon.executemany("INSERT INTO ingested_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", p.file_rows)
    if p.raw is None:
        return
    name = extract.name
    wcon.register("_q", p.quarantine)
    wcon.execute(f"INSERT INTO quarantine SELECT {batch_id}, '{name}', _file, _line, reason, record FROM _q")
    wcon.unregister("_q")
    wcon.register("_raw", p.raw)
    wcon.register("_stg", p.stg)
    if extract.snapshot:
        if p.stg.num_rows == 0:
            log.warning("%s: the snapshot delivered tonight has no loadable row; it replaces the last one", name)
        wcon.execute(f"DELETE FROM raw_{name}")
        wcon.execute(f"DELETE FROM stg_{name}")
    else:
        k = extract.key[0]
        wcon.execute(f'DELETE FROM stg_{name} WHERE "{k}" IN (SELECT "{k}" FROM _stg)')
    clock("delete")
    wcon.execute(f"INSERT INTO raw_{name} BY NAME SELECT *, {batch_id}::BIGINT AS _batch_id FROM _raw")
    clock("write raw")
    wcon.execute(f"INSERT INTO stg_{name} BY NAME SELECT *, {batch_id}::BIGINT AS _batch_id FROM _stg")
    clock("write stg")
    wcon.unregister("_raw")
    wcon.unregister("_stg")


@contextlib.contextmanager
def inspected(input_dir: Path | str):
    """Phase 1: the landing directory's files, every one inspected (encoding, hash, header), with
    GB18030 transcodes in a temporary directory removed on exit. Raises RefusedInput; writes nothing."""
    found = discover(Path(input_dir))
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-ingest-"))
    try:
        for files in found.values():
            for sf in files:
                inspect(sf, tmp)
        yield found
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ingest(input_dir: Path | str, warehouse: Path | str, as_of: dt.date) -> IngestResult:
    """Ingest a landing directory into the warehouse file as one new batch. A refusal is raised
    before the file is opened (or created), so it stays byte for byte as it was."""
    t0, started = time.perf_counter(), dt.datetime.now()
    with inspected(input_dir) as found:
        Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(warehouse)) as con:
            return _load(con, found, Path(input_dir), as_of, started, t0)


def ingest_into(con: duckdb.DuckDBPyConnection, input_dir: Path | str, as_of: dt.date) -> IngestResult:
    """The ingest stage on an open connection (DEVELOPERS.md stage interface): inspect everything,
    then write the batch in one transaction on ``con``; returns the new batch's counts."""
    t0, started = time.perf_counter(), dt.datetime.now()
    with inspected(input_dir) as found:
        return _load(con, found, Path(input_dir), as_of, started, t0)


def _load(wcon: duckdb.DuckDBPyConnection, found: dict[str, list[SourceFile]], input_dir: Path,
          as_of: dt.date, started: dt.datetime, t0: float) -> IngestResult:
    """Phases 2 and 3: read, normalise, validate and write every extract in one transaction."""
    order = wcon.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    reader = duckdb.connect()
    try:
        reader.execute("SET enable_progress_bar=false")
        # text as Arrow string views, the layout polars keeps strings in: no conversion on the way
        reader.execute("SET arrow_output_version='1.5'")
        reader.execute("SET produce_arrow_string_view=true")
        # one reader thread: it runs alongside the writer (the connection's threads), and a second
        # one buys little on two cores but costs CPU
        reader.execute("SET threads=1")
        wcon.execute("SET enable_progress_bar=false")
        # row order in the warehouse carries no meaning (_file, _line do); unordered inserts
        # run in parallel, about twice as fast
        wcon.execute("SET preserve_insertion_order=false")
        wcon.execute("BEGIN TRANSACTION")
        try:
            for stmt in COMMON_DDL:
                wcon.execute(stmt)
            for e in EXTRACTS.values():
                for stmt in ddl(e):
                    wcon.execute(stmt)
            batch_id = wcon.execute("SELECT coalesce(max(batch_id), 0) + 1 FROM runs").fetchone()[0]
            counts = {name: ExtractCounts(name) for name in EXTRACTS}
            skips = {name: _already_loaded(wcon, EXTRACTS[name], files) for name, files in found.items()}
            # largest first: the write of one big extract overlaps the preparation of the next big one
            todo = sorted((name for name in EXTRACTS if name in found),
                          key=lambda name: -sum(sf.size for sf in found[name]))
            # a pipeline of two: the next extract is read and normalised (polars, DuckDB reader)
            # in a worker thread while this one is written (both release the GIL)
            with ThreadPoolExecutor(max_workers=1) as pool:
                def submit(name: str):
                    return pool.submit(_prepare, reader, EXTRACTS[name], found[name], skips[name], batch_id, as_of)

                future = submit(todo[0]) if todo else None
                for i, name in enumerate(todo):
                    prepared = future.result()
                    future = submit(todo[i + 1]) if i + 1 < len(todo) else None
                    _write(wcon, EXTRACTS[name], prepared, batch_id)
                    counts[name] = prepared.counts
                    del prepared
            for name, c in counts.items():
                log.info("%s: %d files (%d skipped), %d rows read, %d loaded, %d quarantined", name, c.files,
                         c.files_skipped, c.rows_read, c.rows_loaded, c.rows_quarantined)
                wcon.execute("INSERT INTO run_extracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [batch_id, name, c.delivered, c.files, c.files_skipped, c.rows_read,
                              c.rows_loaded, c.rows_quarantined])
            tot = {k: sum(getattr(c, k) for c in counts.values())
                   for k in ("files", "files_skipped", "rows_read", "rows_loaded", "rows_quarantined")}
            wcon.execute(
                "INSERT INTO runs (batch_id, as_of, started_at, finished_at, outcome, input_dir, files, "
                "files_skipped, rows_read, rows_loaded, rows_quarantined) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [batch_id, as_of, started, dt.datetime.now(), "ingested", str(input_dir), tot["files"],
                 tot["files_skipped"], tot["rows_read"], tot["rows_loaded"], tot["rows_quarantined"]])
            wcon.execute("COMMIT")
        except BaseException:
            wcon.execute("ROLLBACK")
            raise
    finally:
        reader.close()
        wcon.execute(f"SET preserve_insertion_order={'true' if str(order).lower() == 'true' else 'false'}")
    return IngestResult(batch_id, as_of, counts, time.perf_counter() - t0)


def finish_run(target: duckdb.DuckDBPyConnection | Path | str, batch_id: int, outcome: str) -> None:
    """Close the batch's ``runs`` row (the flow calls this after its last stage); ``target`` is
    an open connection or the warehouse (working copy) file."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        target.execute("UPDATE runs SET outcome = ?, finished_at = ? WHERE batch_id = ?",
                       [outcome, dt.datetime.now(), batch_id])
        return
    with duckdb.connect(str(target)) as con:
        finish_run(con, batch_id, outcome)
