"""Ingest one landing directory (EXTRACTS.md) into the warehouse (DEVELOPERS.md table contract).

Plain functions, no Prefect. Three phases:

1. **Inspect** (nothing is written): account for every entry of the landing directory (an
   extract's file, or ignored with a reason; a name almost like an extract's, a symlink that does
   not resolve to a regular file inside, a FIFO or a device refused), refuse an unknown
   format, detect each CSV's encoding (strict UTF-8 with or without BOM, else GB18030,
   transcoded to a temporary UTF-8 copy in 4 MB chunks because DuckDB cannot read GB18030;
   refused when the bytes look like Latin-1 and read as uncommon characters in GB18030),
   hash it (sha256), and map its header (canonical names or Chinese aliases, ignoring
   surrounding spaces, case and full-width forms) to canonical columns; a missing required
   column refuses the batch. Any refusal raises :class:`RefusedInput` before the warehouse
   is even opened, so it stays byte-for-byte as it was.
2. **Read and normalise**, extract by extract, in bulk: DuckDB ``read_csv`` (all columns as
   text, explicit dialect) or ``read_parquet`` into Arrow/polars; rows DuckDB cannot split
   into the header's columns are quarantined from its rejects table; values normalised with
   polars, column by column (once per distinct value where values repeat, a cheap exact path for
   values already in a canonical layout, the full cleaner for the rest); the catalogue's domain
   checks (:mod:`data_contracts.domains`) add one companion flag per check; the pandera schema
   validates the collected frame (``lazy=True``) and failing rows are quarantined with file,
   line and reason, as are the rows of a key repeated in one file with different contents.
3. **Write** everything in one DuckDB transaction (raw, staging, quarantine, file log, landing
   entries, re-sent and changed keys, run counts); any error rolls it back, including a snapshot
   refused for shrinking implausibly (:class:`Options`). Phases 2 and 3 overlap by one extract: the next extract
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
import errno
import hashlib
import io
import logging
import re
import shutil
import stat
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
from rapidfuzz.distance import Levenshtein

from data_contracts.errors import RefusedInput
from data_contracts.domains import column_flags
from data_contracts.extracts import EXTRACTS, Extract, Limits
from data_contracts.ids import clean_id, fold_fullwidth, id_valid, mask_ids_in_text, upgrade_legacy
from data_contracts.normalise import PARSERS, clean_name, clean_sex, clean_text
from data_contracts.schemas import reason_text, schema_for

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
    kind: str = "file"  # or symlink (to a regular file inside the landing directory)
    link_to: str | None = None  # a symlink's target, relative to the landing directory
    floats: set[str] = field(default_factory=set)  # Parquet columns stored as binary floating point


def _fold_header(text: str) -> str:
    return pl.select(fold_fullwidth(pl.lit(text))).item().strip().casefold()


def alias_map(extract: Extract) -> dict[str, str]:
    """Folded header spelling -> canonical column name."""
    out: dict[str, str] = {}
    for c in extract.columns:
        for spelling in (c.name, *c.aliases):
            out[_fold_header(spelling)] = c.name
    return out


@dataclass
class Entry:
    """One entry of the landing directory and what the batch made of it (``landing_entries``)."""
    entry: str  # path relative to the landing directory
    kind: str  # file, directory, symlink
    status: str  # loaded, skipped (a re-delivery), ignored
    reason: str


def _kind(p: Path) -> str:
    mode = p.lstat().st_mode
    for test, kind in ((stat.S_ISLNK, "symlink"), (stat.S_ISDIR, "directory"), (stat.S_ISREG, "file"),
                       (stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return kind
    return "special file"


def _check_entry(p: Path, root: Path, rel: str) -> str:
    """The entry's kind; refuses what is neither a regular file, a directory nor a symlink that
    resolves to a regular file inside the landing directory."""
    kind = _kind(p)
    if kind in ("file", "directory"):
        return kind
    if kind != "symlink":
        raise RefusedInput(rel, f"a {kind}, not a file: remove it from the landing directory")
    try:
        target = p.resolve(strict=True)
    except (OSError, RuntimeError) as ex:  # RuntimeError: a loop on Python < 3.13
        what = "a loop" if isinstance(ex, RuntimeError) or getattr(ex, "errno", None) == errno.ELOOP else "dangling"
        raise RefusedInput(rel, f"symbolic link that does not resolve ({what}): remove or repair it") from None
    if not target.is_relative_to(root):
        raise RefusedInput(rel, "symbolic link pointing outside the landing directory: deliver the file itself")
    if not stat.S_ISREG(target.stat().st_mode):
        raise RefusedInput(rel, "symbolic link to something that is not a regular file: remove it")
    return kind


def near_miss(name: str) -> str | None:
    """The name ``name`` was likely meant to have, when it is close to an extract's (edit distance
    at most 2, case, ``_`` for ``-``: ``payment-04.csv``, ``Payments-05.csv``, ``payments_06.csv``);
    None when it is like no extract's."""
    stem, dot, ext = name.partition(".")
    tokens = stem.casefold().replace("-", "_").split("_")
    for extract in EXTRACTS:
        n = extract.count("_") + 1
        for k in range(max(1, n - 1), min(len(tokens), n + 1) + 1):
            if Levenshtein.distance("_".join(tokens[:k]), extract, score_cutoff=2) <= 2:
                rest = "_".join(tokens[k:])
                return extract + (f"-{rest}" if rest else "") + dot + ext.lower()
    return None


def survey(input_dir: Path) -> tuple[dict[str, list[SourceFile]], list[Entry]]:
    """Every entry of the landing directory accounted for: the files per delivered extract, in a
    stable order (sorted by relative path: a later file wins over an earlier one when both carry
    the same key), and the entries ignored, with the reason. Refuses (RefusedInput) a name
    almost like an extract's, a symlink that does not resolve to a regular file inside the
    directory, a FIFO, a device or a socket, an unknown format for an extract, a missing
    required extract."""
    if not input_dir.is_dir():
        raise RefusedInput(str(input_dir), "landing directory does not exist or is not a directory")
    root = input_dir.resolve()
    found: dict[str, list[SourceFile]] = {}
    entries: list[Entry] = []

    def add(extract: str, p: Path, kind: str) -> None:
        rel = str(p.relative_to(input_dir))
        ext = p.name.rsplit(".", 1)[-1].lower() if "." in p.name else ""
        if ext not in FORMATS:
            raise RefusedInput(rel, f"unknown format {p.suffix or '(no extension)'!r} for extract "
                                    f"{extract}: expected .csv or .parquet")
        link_to = str(p.resolve().relative_to(root)) if kind == "symlink" else None
        found.setdefault(extract, []).append(SourceFile(extract, p, rel, ext, kind=kind, link_to=link_to))

    for p in sorted(input_dir.iterdir()):
        if p.name.startswith("."):
            entries.append(Entry(p.name, _kind(p), "ignored", "hidden entry"))
            continue
        kind = _check_entry(p, root, p.name)
        if kind == "directory" and p.name in EXTRACTS:
            entries.append(Entry(p.name, kind, "loaded", f"extract directory of {p.name}"))
            for q in sorted(p.iterdir()):
                rel = str(q.relative_to(input_dir))
                if q.name.startswith("."):
                    entries.append(Entry(rel, _kind(q), "ignored", "hidden entry"))
                    continue
                if _check_entry(q, root, rel) == "directory":
                    raise RefusedInput(rel, "unexpected directory inside an extract directory")
                add(p.name, q, _kind(q))
            continue
        stem = p.name.split(".", 1)[0]
        extract = next((e for e in EXTRACTS if stem == e or p.name.startswith(e + "-")), None)
        if extract is not None:
            if kind == "directory":
                raise RefusedInput(p.name, f"a directory named like a file of extract {extract}: an extract's "
                                           f"directory is named {extract}/")
            add(extract, p, kind)
            continue
        meant = near_miss(p.name)
        if meant is not None:
            raise RefusedInput(p.name, f"named almost like an extract: did you mean {meant!r}? Rename it, or "
                                       f"move it out of the landing directory if it is not one")
        log.info("ignoring %s: not an extract", p.name)
        entries.append(Entry(p.name, kind, "ignored", "named like no extract"))
    for name, e in EXTRACTS.items():
        if e.required and not found.get(name):
            raise RefusedInput(str(input_dir / name), f"required extract {name} was not delivered")
    for files in found.values():
        files.sort(key=lambda f: f.rel)
    return found, entries


def discover(input_dir: Path) -> dict[str, list[SourceFile]]:
    """The files per delivered extract (:func:`survey` without the ignored entries)."""
    return survey(input_dir)[0]


def precheck(input_dir: Path) -> None:
    """What can be refused from names and first lines alone, in a moment, before a batch starts
    Prefect: the landing directory's entries (:func:`survey`), unreadable Parquet files, empty
    files and headers that miss or repeat a column. The full inspection (encoding, hash) is the
    ingest's own. Raises RefusedInput; writes nothing."""
    for files in discover(input_dir).values():
        for sf in files:
            if sf.fmt == "parquet":
                try:
                    names = pq.read_schema(sf.path).names
                except Exception as ex:  # noqa: BLE001 -- any failure to open is a refusal
                    raise RefusedInput(sf.rel, f"not a readable Parquet file ({type(ex).__name__})") from None
            else:
                with open(sf.path, "rb") as f:
                    first = f.readline(1 << 20).removeprefix(codecs.BOM_UTF8)
                try:
                    text = first.decode("utf-8")
                except UnicodeDecodeError:
                    text = first.decode("gb18030", errors="replace")  # the ingest decides the file's encoding
                if not text.strip():
                    raise RefusedInput(sf.rel, "empty file: no header row")
                names = next(csv.reader(io.StringIO(text)))
            _map_header(sf, names)


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
    if _looks_single_byte(sf.path) and not _common_chinese(out):
        raise RefusedInput(sf.rel, "encoding cannot be told: not UTF-8, and read as GB18030 it gives characters "
                                   "outside the common Chinese set, while its bytes read as Latin-1 accented letters "
                                   "(like 'Renée'); deliver it as UTF-8")
    sf.encoding = "gb18030"
    sf.read_path = out


_HIGH, _HIGH_PAIR = re.compile(rb"[\x80-\xff]"), re.compile(rb"[\x80-\xff]{2}")


def _looks_single_byte(path: Path) -> bool:
    """Do the file's bytes read as a single-byte (Latin-1, Windows-1252) text? Its non-ASCII bytes
    then stand alone between ASCII ones (``Ren\\xe9e``); in Chinese text every character is two
    or four bytes of which the first is non-ASCII, and GB2312 characters have two non-ASCII bytes
    side by side, so a real GB18030 file stops the scan at its first common Chinese character."""
    seen_high = False
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            if _HIGH_PAIR.search(chunk):
                return False
            seen_high = seen_high or _HIGH.search(chunk) is not None
    return seen_high


def _common_chinese(utf8_copy: Path) -> bool:
    """Does the GB18030 reading hold only characters of the common set (GB2312: every character
    a Chinese register normally needs)? Read from its UTF-8 transcode."""
    with open(utf8_copy, encoding="utf-8") as f:
        while text := f.read(CHUNK):
            try:
                text.encode("gb2312")
            except UnicodeEncodeError:
                return False
    return True


def _safe_label(text: str) -> str:
    """A header cell for a log line or a refusal, quoted, with any ID number masked (a file whose
    first line is not a header has data there)."""
    return repr(mask_ids_in_text(text))


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
            schema = pq.read_schema(sf.path)
        except Exception as ex:  # noqa: BLE001 -- any failure to open is a refusal
            raise RefusedInput(sf.rel, f"not a readable Parquet file ({type(ex).__name__})") from None
        names = schema.names
        sf.floats = {f.name for f in schema if pyarrow.types.is_floating(f.type)}
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
        # a binary float cannot hold fen exactly (99.99 may be 99.99000000000001): its text is its value to
        # 6 decimals, so that the fen check sees 99.990000, and 100.005 still as 100.005000
        sel = ", ".join((f'CAST(TRY_CAST("{src}" AS DECIMAL(38, 6)) AS VARCHAR)' if src in sf.floats else
                         f'CAST("{src}" AS VARCHAR)') + f' AS "{c}"' for src, c in zip(sf.source_names, sf.columns) if c)
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


def normalise(extract: Extract, raw: pl.DataFrame, as_of: dt.date, limits: Limits | None = None) -> pl.DataFrame:
    """Normalised values (DEVELOPERS.md staging types) plus ``c_valid``, ``c__unparseable`` and
    the domain-check companions ``c__<check>`` (:mod:`data_contracts.domains`), row for row with ``raw``.

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
    for c in extract.columns:  # after every column is normalised: a check may read another column
        out.update(column_flags(extract, c, raw[c.name], out[c.name], out, as_of, limits or Limits(), _apply))
    return pl.DataFrame([*out.values(), raw["_file"], raw["_line"]])


def quarantine_reasons(extract: Extract, norm: pl.DataFrame) -> pl.DataFrame:
    """Validate with the extract's pandera model; one row (``index``, ``reason``) per failing row."""
    flagged = tuple(c for c in norm.columns if "__" in c and not c.endswith("__unparseable") and norm[c].any())
    model = schema_for(extract.name, flagged)
    try:
        model.validate(norm, lazy=True)
        return pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String})
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
    if fc.filter(pl.col("index").is_null()).height:  # a schema-level failure is a bug, not bad data
        raise RuntimeError(f"{extract.name}: schema failure {fc.filter(pl.col('index').is_null())}")
    fc = fc.select(pl.col("index").cast(pl.Int64), "column", "check").unique()
    unparseable = fc.filter(pl.col("column").str.ends_with("__unparseable")).select(
        "index", pl.col("column").str.strip_suffix("__unparseable").alias("base"))
    # a value that was delivered but unparseable also fails not_nullable: report it once
    fc = fc.join(unparseable.with_columns(dup=pl.lit(True)), left_on=["index", "column"],
                 right_on=["index", "base"], how="left").filter(pl.col("dup").is_null())
    # companion flags (c__unparseable, c__not_positive, ...): the reason schemas.REASONS gives
    flags = {f"{c.name}__{check}": f"{reason_text(extract.name, c.name, check)}: {c.name}"
             for c in extract.columns for check in ("unparseable", *c.checks)}
    reason = (
        pl.when(pl.col("column").is_in(list(flags)))
        .then(pl.col("column").replace_strict(flags, default=None))
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
    """CREATE TABLE IF NOT EXISTS landing_entries (
        batch_id BIGINT, entry VARCHAR, kind VARCHAR, status VARCHAR, reason VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS key_versions (
        batch_id BIGINT, extract VARCHAR, keys_resent BIGINT, keys_changed BIGINT)""",
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
    changed: pyarrow.Table | None = None  # keys delivered tonight in several files with different contents
    keys_resent: int = 0  # keys already in staging (incremental extracts), set when written
    keys_changed: int = 0  # of which with other content, or changed between tonight's files


def _prepare(con: duckdb.DuckDBPyConnection, extract: Extract, files: list[SourceFile], skip: set[str],
             batch_id: int, as_of: dt.date, limits: Limits) -> Prepared:
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
    norm = normalise(extract, raw, as_of, limits)
    clock("normalise")
    bad = quarantine_reasons(extract, norm)
    clock("validate")
    value_cols = extract.column_names
    q = [raw[bad["index"]].with_columns(reason=bad["reason"])
         .select("_file", "_line", "reason", pl.struct(value_cols).struct.json_encode().alias("record")),
         rej.select("_file", "_line", "reason", "record")]
    n.rows_read = raw.height + rej.height
    good_raw, good = raw, norm.drop(c for c in norm.columns if "__" in c)  # the companion flags
    del norm
    if bad.height:
        ok_mask = ~pl.int_range(0, raw.height, dtype=pl.Int64, eager=True).is_in(bad["index"].implode())
        good_raw, good = good_raw.filter(ok_mask), good.filter(ok_mask)
    changed = None
    # a key delivered more than once tonight: different contents within one file are quarantined
    # (every row of the key in that file: which one is right, nobody can tell); across files the
    # later file wins and the key counts as changed. A single key is usually unique already,
    # which is cheaper to see than to filter.
    if len(extract.key) > 1 or good[extract.key[0]].n_unique() < good.height:
        key = pl.col(extract.key[0]) if len(extract.key) == 1 else pl.struct(extract.key)
        idx = good.select(key.is_duplicated()).to_series().arg_true()
        content = [c for c in good.columns if c not in ("_file", "_line")]
        d = good[idx].select(k=key, f="_file", h=pl.struct(content).hash(), i=idx)
        conflict = d.filter(pl.col("h").n_unique().over("k", "f") > 1)["i"]
        if conflict.len():
            q.append(good_raw[conflict].select(
                "_file", "_line", pl.lit(f"duplicate key with different content in one file: {', '.join(extract.key)}")
                .alias("reason"), pl.struct(value_cols).struct.json_encode().alias("record")))
            keep = ~pl.int_range(0, good.height, dtype=pl.Int64, eager=True).is_in(conflict.implode())
            good_raw, good = good_raw.filter(keep), good.filter(keep)
            d = d.filter(~pl.col("i").is_in(conflict.implode()))
        if len(extract.key) == 1:
            changed = d.filter(pl.col("h").n_unique().over("k") > 1).select(pl.col("k").unique().alias(extract.key[0]))
        good = good.filter(key.is_last_distinct())
    q = pl.concat(q)
    n.rows_quarantined = q.height
    n.rows_loaded = good_raw.height
    # string views as polars holds them: no copy, and DuckDB scans them faster than large strings
    newest = pl.CompatLevel.newest()
    out = Prepared(n, file_rows, q.to_arrow(compat_level=newest), good_raw.to_arrow(compat_level=newest),
                   good.to_arrow(compat_level=newest),
                   changed.to_arrow() if changed is not None and changed.height else None)
    clock("quarantine, dedupe, to Arrow")
    return out


def _q(col: str) -> str:
    return '"' + col + '"'


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
        wcon.execute(f"DELETE FROM raw_{name}")
        wcon.execute(f"DELETE FROM stg_{name}")
    else:
        # a key already loaded: the earlier version stays in raw_* (append-only), staging takes the
        # new one; counted, and counted as changed when its content differs (or differed between
        # tonight's files), so that no change goes unsaid
        k = extract.key[0]
        content = extract.column_names  # the values, not the lineage nor the derived _valid
        differs = (f"ROW({', '.join(f's.{_q(c)}' for c in content)}) IS DISTINCT FROM "
                   f"ROW({', '.join(f't.{_q(c)}' for c in content)})")
        resent = f"FROM _stg s JOIN stg_{name} t ON s.{_q(k)} = t.{_q(k)}"  # an inner join: only re-sent keys
        changed = f"SELECT s.{_q(k)} {resent} WHERE {differs}"
        if p.changed is not None:
            wcon.register("_changed", p.changed)
            changed += f" UNION SELECT {_q(k)} FROM _changed"
        p.keys_resent, p.keys_changed = wcon.execute(
            f"SELECT (SELECT count(*) {resent}), (SELECT count(*) FROM ({changed}))").fetchall()[0]
        if p.changed is not None:
            wcon.unregister("_changed")
        wcon.execute(f'DELETE FROM stg_{name} WHERE "{k}" IN (SELECT "{k}" FROM _stg)')
    clock("delete")
    wcon.execute(f"INSERT INTO raw_{name} BY NAME SELECT *, {batch_id}::BIGINT AS _batch_id FROM _raw")
    clock("write raw")
    wcon.execute(f"INSERT INTO stg_{name} BY NAME SELECT *, {batch_id}::BIGINT AS _batch_id FROM _stg")
    clock("write stg")
    wcon.unregister("_raw")
    wcon.unregister("_stg")


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


@contextlib.contextmanager
def inspected(input_dir: Path | str):
    """Phase 1: the landing directory's entries accounted for and its files inspected (encoding,
    hash, header), with GB18030 transcodes in a temporary directory removed on exit; yields the
    files per extract and the ignored entries. Raises RefusedInput; writes nothing."""
    found, entries = survey(Path(input_dir))
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-ingest-"))
    try:
        for files in found.values():
            for sf in files:
                inspect(sf, tmp)
        yield found, entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ingest(input_dir: Path | str, warehouse: Path | str, as_of: dt.date, **options) -> IngestResult:
    """Ingest a landing directory into the warehouse file as one new batch. A refusal is raised
    before the file is opened (or created), so it stays byte for byte as it was; a snapshot
    refused for shrinking (:class:`Options`) is refused inside the batch's transaction, which is
    rolled back. ``options``: ``allow_shrink``, ``min_snapshot_share``, ``limits``."""
    t0, started = time.perf_counter(), dt.datetime.now()
    opts = Options.of(**options)
    with inspected(input_dir) as (found, entries):
        Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
        with duckdb.connect(str(warehouse)) as con:
            return _load(con, found, entries, Path(input_dir), as_of, started, t0, opts)


def ingest_into(con: duckdb.DuckDBPyConnection, input_dir: Path | str, as_of: dt.date, **options) -> IngestResult:
    """The ingest stage on an open connection (DEVELOPERS.md stage interface): inspect everything,
    then write the batch in one transaction on ``con``; returns the new batch's counts."""
    t0, started = time.perf_counter(), dt.datetime.now()
    opts = Options.of(**options)
    with inspected(input_dir) as (found, entries):
        return _load(con, found, entries, Path(input_dir), as_of, started, t0, opts)


def _check_shrink(extract: Extract, files: list[SourceFile], p: Prepared, last: int, opts: Options) -> None:
    """Refuse a snapshot that shrinks implausibly (EXTRACTS.md), unless the operator confirmed it."""
    if not extract.snapshot or p.stg is None:
        return
    rows = p.stg.num_rows
    if rows > 0 and rows >= opts.min_snapshot_share * last:
        return
    what = (f"no loadable row ({p.counts.rows_read} read, {p.counts.rows_quarantined} quarantined)" if rows == 0 else
            f"{rows:,} loadable rows, fewer than {opts.min_snapshot_share:.0%} of the last snapshot's")
    where = ", ".join(sf.rel for sf in files)
    if opts.may_shrink(extract.name):
        log.warning("%s: snapshot %s has %s (last snapshot: %d rows); accepted by the operator",
                    where, extract.name, what, last)
        return
    raise RefusedInput(where, f"snapshot {extract.name} has {what} against {last:,} rows in the last snapshot; "
                              f"nothing was changed. If the register really shrank, confirm with "
                              f"--accept-shrunk-snapshot {extract.name}")


def _load(wcon: duckdb.DuckDBPyConnection, found: dict[str, list[SourceFile]], entries: list[Entry],
          input_dir: Path, as_of: dt.date, started: dt.datetime, t0: float, opts: Options) -> IngestResult:
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
            last_rows = {name: wcon.execute(f"SELECT count(*) FROM stg_{name}").fetchone()[0]
                         for name in found if EXTRACTS[name].snapshot}
            file_status: dict[str, str] = {}
            versions: list[tuple] = []
            # largest first: the write of one big extract overlaps the preparation of the next big one
            todo = sorted((name for name in EXTRACTS if name in found),
                          key=lambda name: -sum(sf.size for sf in found[name]))
            # a pipeline of two: the next extract is read and normalised (polars, DuckDB reader)
            # in a worker thread while this one is written (both release the GIL)
            with ThreadPoolExecutor(max_workers=1) as pool:
                def submit(name: str):
                    return pool.submit(_prepare, reader, EXTRACTS[name], found[name], skips[name], batch_id, as_of,
                                       opts.limits)

                future = submit(todo[0]) if todo else None
                for i, name in enumerate(todo):
                    prepared = future.result()
                    future = submit(todo[i + 1]) if i + 1 < len(todo) else None
                    _check_shrink(EXTRACTS[name], found[name], prepared, last_rows.get(name, 0), opts)
                    _write(wcon, EXTRACTS[name], prepared, batch_id)
                    counts[name] = prepared.counts
                    file_status.update({r[2]: r[7] for r in prepared.file_rows})
                    if not EXTRACTS[name].snapshot and prepared.raw is not None:
                        versions.append((batch_id, name, prepared.keys_resent, prepared.keys_changed))
                    del prepared
            for name, c in counts.items():
                log.info("%s: %d files (%d skipped), %d rows read, %d loaded, %d quarantined", name, c.files,
                         c.files_skipped, c.rows_read, c.rows_loaded, c.rows_quarantined)
                wcon.execute("INSERT INTO run_extracts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [batch_id, name, c.delivered, c.files, c.files_skipped, c.rows_read,
                              c.rows_loaded, c.rows_quarantined])
            if versions:
                wcon.executemany("INSERT INTO key_versions VALUES (?, ?, ?, ?)", versions)
            wcon.executemany("INSERT INTO landing_entries VALUES (?, ?, ?, ?, ?)",
                             _entry_rows(batch_id, found, entries, file_status))
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


def finish_run(target: duckdb.DuckDBPyConnection | Path | str, batch_id: int, outcome: str) -> None:
    """Close the batch's ``runs`` row (the flow calls this after its last stage); ``target`` is
    an open connection or the warehouse (working copy) file."""
    if isinstance(target, duckdb.DuckDBPyConnection):
        target.execute("UPDATE runs SET outcome = ?, finished_at = ? WHERE batch_id = ?",
                       [outcome, dt.datetime.now(), batch_id])
        return
    with duckdb.connect(str(target)) as con:
        finish_run(con, batch_id, outcome)
