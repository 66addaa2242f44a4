"""What was delivered: the landing directory inspected and its files read as text (EXTRACTS.md).

Nothing here writes to the warehouse.

- :func:`survey` accounts for every entry of the landing directory: an extract's file, or ignored
  with a reason; a name almost like an extract's, a symlink that does not resolve to a regular file
  inside, a FIFO or a device refused; a missing required extract refused.
- :func:`inspect_file` refuses an unknown format, detects each CSV's encoding (strict UTF-8 with or
  without BOM, else GB18030, transcoded to a temporary UTF-8 copy in 4 MB chunks because DuckDB
  cannot read GB18030; refused when the bytes look like Latin-1 and read as uncommon characters
  in GB18030), hashes it (sha256), and maps its header (canonical names or Chinese aliases,
  ignoring surrounding spaces, case and full-width forms: :func:`alias_map`) to canonical columns;
  a missing required column refuses the batch. :func:`precheck` is the moment's version of it,
  before a batch starts Prefect.
- :func:`read_file` reads one inspected file in bulk with DuckDB (``read_csv``, all columns as
  text, explicit dialect; or ``read_parquet``) into polars, with the rows DuckDB cannot split into
  the header's columns set apart for the quarantine.

Every refusal raises :class:`RefusedInput` naming the file and the problem, never an ID number.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import errno
import functools
import hashlib
import io
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow
import pyarrow.parquet as pq
from rapidfuzz.distance import Levenshtein

from data_contracts.errors import RefusedInput
from data_contracts.extracts import CJK, EXTRACTS, Extract
from data_contracts.ids import fold_fullwidth, mask_ids_in_text
from data_contracts.warehouse import frame

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
CHUNK = 4 * 1024 * 1024


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
    floats: dict[str, int] = field(default_factory=dict)  # Parquet columns stored as binary floats: their bits
    # Parquet columns stored as dates or times: "date", "timestamp" (a wall-clock time) or "instant" (a
    # timestamp adjusted to UTC); read as text the column's kind accepts (``_parquet_text``)
    temporal: dict[str, str] = field(default_factory=dict)
    stat: str | None = None  # file_stat() when it was hashed, if it may recognise the file later
    lines: int | None = None  # physical lines (a CSV's, counted when it is hashed; read_file counts them otherwise)


@functools.lru_cache(maxsize=4096)
def _fold_header(text: str) -> str:
    """A header spelling folded for comparison (cached: each call is a polars evaluation, and every
    night maps the same few hundred spellings of the catalogue and the files' headers)."""
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
    at most 2, case, any run of other characters than letters and digits for ``-`` or ``_``:
    ``payment-04.csv``, ``Payments-05.csv``, ``payments_06.csv``, ``payments 08.csv``, the name a
    second download is given, ``payments (1).csv``); None when it is like no extract's."""
    stem, dot, ext = name.partition(".")
    tokens = [t for t in re.split(r"[^0-9a-z]+", stem.casefold()) if t] or [""]
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
        if p.name.startswith((".", "~$")):
            entries.append(Entry(p.name, _kind(p), "ignored", _ignored_why(p.name)))
            continue
        kind = _check_entry(p, root, p.name)
        if kind == "directory" and p.name in EXTRACTS:
            entries.append(Entry(p.name, kind, "loaded", f"extract directory of {p.name}"))
            for q in sorted(p.iterdir()):
                rel = str(q.relative_to(input_dir))
                if q.name.startswith((".", "~$")):
                    entries.append(Entry(rel, _kind(q), "ignored", _ignored_why(q.name)))
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


def _ignored_why(name: str) -> str:
    """Why an entry that is no delivery is passed over: hidden, or the owner file Excel keeps beside a
    file someone has open on the share (``~$death_records.csv``), which is no near miss of an extract."""
    return "a spreadsheet's owner file (the file is open somewhere)" if name.startswith("~$") else "hidden entry"


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
                    first = f.readline(1 << 20)
                _refuse_utf16(sf, first)
                first = first.removeprefix(codecs.BOM_UTF8)
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


def _refuse_utf16(sf: SourceFile, head: bytes) -> None:
    """A UTF-16 file (Excel's "Unicode Text", which starts with its byte-order mark) is refused for
    what it is; read as UTF-8 or GB18030 its header would name no column."""
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        raise RefusedInput(sf.rel, "is UTF-16 text (Excel's 'Unicode Text'), which is not accepted: save it as "
                                   "CSV in UTF-8 or GB18030")


def _undecodable_at(path: Path, encoding: str) -> int | None:
    """The file's offset of its first byte ``encoding`` cannot decode (strictly), None if none."""
    dec = codecs.getincrementaldecoder(encoding)("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            pending = len(dec.getstate()[0])  # bytes of a sequence the last chunk cut, decoded with this one
            try:
                dec.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                return offset - pending + e.start
            if not chunk:
                return None
            offset += len(chunk)


def _line_at(path: Path, offset: int) -> int:
    """The line (from 1) the byte at ``offset`` is on."""
    lines, done = 1, 0
    with open(path, "rb") as f:
        while done < offset and (chunk := f.read(min(CHUNK, offset - done))):
            lines, done = lines + chunk.count(b"\n"), done + len(chunk)
    return lines


def _undecodable(sf: SourceFile) -> str:
    """Why a file is neither UTF-8 nor GB18030, and where: the line each encoding fails on, the
    encoding that reads furthest first (a line of another encoding pasted into a file is found on
    the line where the file's own encoding stops)."""
    at = sorted(((off, name) for enc, name in (("utf-8-sig", "UTF-8"), ("gb18030", "GB18030"))
                 if (off := _undecodable_at(sf.path, enc)) is not None), reverse=True)
    where = "; ".join(f"as {name} it stops at line {_line_at(sf.path, off):,} (byte {off:,})" for off, name in at)
    return f"cannot be decoded as UTF-8 or GB18030: {where}. A line in another encoding? Save the file in one"


MIXED_CHINESE = 5  # Chinese characters read as UTF-8 before its first error that make a file UTF-8 at heart


def _refuse_mixed(sf: SourceFile) -> None:
    """A file that is not UTF-8 is taken for GB18030; but one that reads as UTF-8, Chinese and all,
    up to a line pasted in from another encoding would read as GB18030 too, its Chinese garbled, and
    load (a GB18030 file meets its first UTF-8 error at its first Chinese character)."""
    bad = _undecodable_at(sf.path, "utf-8-sig")
    if not bad:
        return
    found = done = 0
    with open(sf.path, "rb") as f:  # the Chinese before it, until there are enough (a chunk or so)
        while found < MIXED_CHINESE and done < bad and (chunk := f.read(min(CHUNK, bad - done))):
            found, done = found + len(_UTF8_CJK.findall(chunk)), done + len(chunk)
    if found >= MIXED_CHINESE:
        raise RefusedInput(sf.rel, f"reads as UTF-8, Chinese and all, up to line {_line_at(sf.path, bad):,} "
                                   f"(byte {bad:,}), and then not: a line in another encoding (GB18030?) pasted in? "
                                   "Save the file in one encoding")


def _detect_and_hash(sf: SourceFile) -> None:
    """sha256 and encoding in one streaming pass (GB18030 is what a file that is not UTF-8 is taken
    for; :func:`_transcode` checks it and makes the UTF-8 copy DuckDB reads)."""
    h = hashlib.sha256()
    utf8, carry, newlines, last = True, b"", 0, b"\n"
    high = chinese = False  # any non-ASCII byte; any Chinese character read as UTF-8
    with open(sf.path, "rb") as f:
        head = f.read(3)
        _refuse_utf16(sf, head)
        bom = head == codecs.BOM_UTF8
        f.seek(0)
        while chunk := f.read(CHUNK):
            h.update(chunk)
            newlines, last = newlines + chunk.count(b"\n"), chunk[-1:]
            if utf8:  # a sequence cut by the chunk's end is checked with the next chunk
                buf = carry + chunk if carry else chunk
                cut = _utf8_boundary(buf)
                utf8, carry = _valid_utf8(buf[:cut]), buf[cut:]
                if utf8 and not chinese:  # the usual file stops looking in its first chunk
                    high = high or _HIGH.search(chunk) is not None
                    chinese = _UTF8_CJK.search(buf) is not None
        if carry:
            utf8 = False
    sf.sha256 = h.hexdigest()
    sf.lines = newlines + (last != b"\n")  # the same in the UTF-8 copy of a GB18030 file
    if utf8 and high and not chinese and _gb18030_chinese(sf.path):
        # valid UTF-8 by chance: a small GB18030 file whose characters are all of the two-byte kind
        # UTF-8 also has (卢 C2AC, 平 C6BD, 医院 D2BD D4BA), which as UTF-8 read as '¬ƽ', 'ҽԺ'
        log.info("%s: read as GB18030: it is valid UTF-8 too, but as UTF-8 holds no Chinese character, "
                 "and as GB18030 common Chinese only", sf.rel)
        utf8 = False
    if utf8:
        sf.encoding = "utf-8-sig" if bom else "utf-8"
        sf.read_path = sf.path
    elif bom:  # read as GB18030 its mark would be two characters glued to the first column's name
        raise RefusedInput(sf.rel, "starts with a UTF-8 byte-order mark, but the rest is not UTF-8 (GB18030 "
                                   "text behind a UTF-8 mark?): save it again as UTF-8, or as GB18030 without the mark")
    else:
        sf.encoding = "gb18030"


def _transcode(sf: SourceFile, tmp: Path) -> None:
    """A GB18030 file checked (strictly decoded, not UTF-8 with a line of another encoding in it, and
    not Latin-1 in disguise) and copied as UTF-8."""
    _refuse_mixed(sf)
    out = Path(tempfile.mkdtemp(dir=tmp)) / sf.path.name  # a folder of its own: files are inspected side by side
    try:
        transcode_gb18030(sf.path, out)
    except UnicodeDecodeError:
        raise RefusedInput(sf.rel, _undecodable(sf)) from None
    if _looks_single_byte(sf.path) and not _common_chinese(out):
        raise RefusedInput(sf.rel, "encoding cannot be told: not UTF-8, and read as GB18030 it gives characters "
                                   "outside the common Chinese set, while its bytes read as Latin-1 accented letters "
                                   "(like 'Renée'); deliver it as UTF-8")
    sf.read_path = out


_HIGH, _HIGH_PAIR = re.compile(rb"[\x80-\xff]"), re.compile(rb"[\x80-\xff]{2}")
_UTF8_CJK = re.compile(rb"[\xe3-\xe9][\x80-\xbf][\x80-\xbf]")  # U+3000-U+9FFF in UTF-8: CJK punctuation and characters


def _gb18030_chinese(path: Path) -> bool:
    """The test a valid UTF-8 file with no Chinese character in it is put to: read as UTF-8, does it
    hold letters of the alphabets GB18030's two-byte characters turn into (U+0100-U+07FF: Latin
    Extended, Greek, Cyrillic, Armenian, Hebrew, Arabic; never in a Chinese register, while a '·' or
    an 'é' may be), and read as GB18030 (strictly), Chinese characters of the common set (GB2312) only?"""
    utf8, gb = (codecs.getincrementaldecoder(e)("strict") for e in ("utf-8", "gb18030"))
    foreign = chinese = False
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                foreign = foreign or re.search("[\u0100-\u07ff]", utf8.decode(chunk, final=not chunk)) is not None
                text = gb.decode(chunk, final=not chunk)
                text.encode("gb2312")
                chinese = chinese or re.search(f"[{CJK}]", text) is not None
                if not chunk:
                    return foreign and chinese
    except (UnicodeDecodeError, UnicodeEncodeError):
        return False


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


# A file whose status (ctime) changed this recently when it was hashed is never recognised by its
# stat later: a write in the same tick of the file system's clock would leave its times as they were.
SETTLED_NS = 2_000_000_000


INSPECTION = 2  # raise when _detect_and_hash's encoding detection changes (2: GB18030 valid as UTF-8 by chance)
# File systems whose status-change time is the kernel's own, set on every write, rename onto and
# change of metadata. Not network or FUSE ones (NFS's attribute cache and server clock, object-store
# mounts whose ctime follows the mtime anyone may set): there a file is always read to be hashed.
LOCAL_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "tmpfs", "overlay", "f2fs",
                                "bcachefs", "jfs", "reiserfs"})


@functools.cache
def _file_systems() -> dict[tuple[int, int], str]:
    """(major, minor) device number -> file system type, of this process's mounts (Linux)."""
    out = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields, _, rest = line.partition(" - ")
                major, _, minor = fields.split()[2].partition(":")
                out[(int(major), int(minor))] = rest.split()[0] if rest.split() else ""
    except (OSError, ValueError, IndexError):
        return {}
    return out


def file_stat(path: Path) -> tuple[str, bool]:
    """The file as the file system describes it (size, modification and status-change times in
    nanoseconds, inode, device), and whether it may recognise the file later: on a local file
    system (:data:`LOCAL_FILE_SYSTEMS`) and left alone for :data:`SETTLED_NS`. Any write to the
    file, or a file put in its place, changes the status-change time, which no program can set
    back: the same description means the same bytes as when it was hashed (as git trusts its index)."""
    st = path.stat()
    local = _file_systems().get((os.major(st.st_dev), os.minor(st.st_dev))) in LOCAL_FILE_SYSTEMS
    # prefixed with the version of what a file is hashed and inspected for (_detect_and_hash): should
    # the encoding's detection change, files recorded before are read again
    return (f"{INSPECTION}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}",
            local and time.time_ns() - st.st_ctime_ns >= SETTLED_NS)


def inspect_file(sf: SourceFile, tmp: Path, transcode: bool = True, known: dict | None = None) -> None:
    """One file: refuse it, or fill in encoding, hash and column mapping. ``transcode=False``: a
    GB18030 file is hashed but neither checked nor copied to UTF-8 yet (:func:`inspected` does that
    for the files the ingest will read). ``known``: (path relative to the landing directory, stat)
    -> (sha256, encoding) of the files the warehouse has hashed before: a file whose stat is one
    of them is not read again (its hash and its encoding, checked then, are those)."""
    sf.size = sf.path.stat().st_size
    sig, trusted = file_stat(sf.path)  # before the bytes are read: a write while they are changes it
    sf.stat = sig if trusted else None
    hit = (known or {}).get((sf.rel, sig)) if trusted else None
    if sf.fmt == "parquet":
        if hit:
            sf.sha256 = hit[0]
        else:
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
        sf.floats = {f.name: f.type.bit_width for f in schema if pyarrow.types.is_floating(f.type)}
        sf.temporal = {f.name: "date" if pyarrow.types.is_date(f.type) else "instant" if f.type.tz else "timestamp"
                       for f in schema if pyarrow.types.is_date(f.type) or pyarrow.types.is_timestamp(f.type)}
        sf.read_path = sf.path
        _map_header(sf, names)
        return
    if hit:
        sf.sha256, sf.encoding = hit
        sf.read_path = sf.path if sf.encoding != "gb18030" else None
    else:
        _detect_and_hash(sf)
    if sf.encoding == "gb18030" and transcode:
        _transcode(sf, tmp)
    if sf.read_path is not None:
        with open(sf.read_path, encoding="utf-8-sig", newline="") as f:
            first = f.readline()
    else:  # not transcoded: its header line only (without a byte-order mark, as the transcode drops it)
        with open(sf.path, "rb") as f:
            first = f.readline(1 << 20).decode("gb18030", errors="replace").removeprefix("\ufeff")
    if not first.strip():
        raise RefusedInput(sf.rel, "empty file: no header row")
    names = next(csv.reader(io.StringIO(first)))
    _map_header(sf, names)


@contextlib.contextmanager
def inspected(input_dir: Path | str, skipped=None, known: dict | None = None):
    """The landing directory's entries accounted for and its files inspected (encoding,
    hash, header), with GB18030 transcodes in a temporary directory removed on exit; yields the
    files per extract and the ignored entries. Raises RefusedInput; writes nothing.

    ``skipped(extract, files) -> set of sha256``: the files the ingest will skip as re-deliveries
    (known by their bytes: they were checked when first loaded). A GB18030 file among them is not
    transcoded again, which is most of a night with nothing new (1 s per 100 MB). ``known``: the
    files hashed before, recognised by their stat (:func:`inspect_file`), not read again."""
    found, entries = survey(Path(input_dir))
    tmp = Path(tempfile.mkdtemp(prefix="sentinel-ingest-"))
    try:
        # two files at a time, largest first: hashing and the UTF-8 check release the GIL, so one file's
        # GB18030 transcode (which holds it) overlaps another's hashing. The refusal raised is the first
        # file's in the directory's order, as if they were inspected one after another.
        files = [sf for fs in found.values() for sf in fs]
        _two_at_a_time(lambda sf: inspect_file(sf, tmp, transcode=skipped is None, known=known), files)
        if skipped is not None:
            known = {extract: skipped(extract, fs) for extract, fs in found.items()}
            _two_at_a_time(lambda sf: _transcode(sf, tmp),
                          [sf for sf in files if sf.encoding == "gb18030" and sf.sha256 not in known[sf.extract]])
        yield found, entries
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _two_at_a_time(fn, files: list[SourceFile]) -> None:
    """``fn(sf)`` for every file, two at a time (largest first); raises the exception of the first
    file in ``files``' order that raised one, after every call has ended."""
    order = sorted(range(len(files)), key=lambda i: -files[i].path.stat().st_size)
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = {i: pool.submit(fn, files[i]) for i in order}
    for i in range(len(files)):
        done[i].result()


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _count_lines(path: Path) -> int:
    newlines, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            newlines, last = newlines + chunk.count(b"\n"), chunk[-1:]
    return newlines + (last != b"\n")


def csv_records(path: Path, quotes: bool,
                resync: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per record of a CSV file as DuckDB counts them in its rejects' ``line`` (the header, every
    row, every blank line): the file's line it starts on, and whether it is blank (nothing, or a
    carriage return alone: DuckDB reads no row from it). A newline ends a record unless (``quotes``)
    an odd number of quotes precede it (it is inside a quoted field; an escaped quote is two).
    ``resync``: the records DuckDB rejected, as (their number in its count, the line breaks inside
    each, which its text shows): such a record ends where DuckDB ended it, whatever its quotes, and
    the quotes are counted afresh after it, as DuckDB reads on after a malformed record (a stray
    opening quote makes it read on to the line with the next quote, and no further). In chunks: a
    few arrays the size of a chunk, and a few numbers per line of the file."""
    offsets, quotes_before, after_cr = [], [], []  # per newline: offset, quotes before it, after \r?
    seen = offset = 0
    last = -1  # the byte before the chunk
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK * 16):
            a = np.frombuffer(chunk, dtype=np.uint8)
            newlines = np.flatnonzero(a == 10)
            at = np.flatnonzero(a == 34) if quotes else np.zeros(0, dtype=np.int64)
            offsets.append(newlines + offset)
            quotes_before.append(np.searchsorted(at, newlines) + seen)
            after_cr.append(np.where(newlines > 0, a[np.maximum(newlines - 1, 0)], last) == 13)
            seen, offset, last = seen + len(at), offset + len(a), int(a[-1])
    nl, qb, cr = (np.concatenate(x) if x else np.zeros(0, dtype=np.int64) for x in (offsets, quotes_before, after_cr))
    # the newlines that end a record when the quotes are counted from the file's start (even) or from
    # a point after an odd number of them: a stretch counted afresh takes the one its start's count says
    even = np.flatnonzero(qb % 2 == 0)
    candidates = (even, np.flatnonzero(qb % 2 == 1))
    ending = np.zeros(len(nl), dtype=bool)
    first = counted = records = 0  # where a stretch starts (a newline's index), quotes before it, records before it
    numbers, spans = resync if resync is not None else ((), ())
    for number, span in sorted(zip(numbers, spans)):
        ends = candidates[counted % 2]
        at = np.searchsorted(ends, first)
        before = number - 1 - records  # records of the stretch before the rejected one
        if before < 0 or at + before > len(ends):
            break
        start = ends[at + before - 1] + 1 if before else first  # the newline index the rejected record starts at
        stop = start + int(span)  # the newline ending it
        if stop >= len(nl):  # it runs to the end of the file
            break
        ending[ends[at:at + before]] = True
        ending[stop] = True
        first, counted, records = stop + 1, int(qb[stop]), number
    ends = candidates[counted % 2]
    ending[ends[np.searchsorted(ends, first):]] = True
    ends, ranks, cr = nl[ending], np.flatnonzero(ending), cr[ending].astype(bool)
    line = np.concatenate([[1], ranks + 2])  # a record starts on the line after its predecessor's end
    size = np.diff(np.concatenate([[-1], ends, [offset]])) - 1  # bytes between two record ends
    blank = (size == 0) | ((size == 1) & np.append(cr, last == 13))
    return line, blank


def _line_numbers(sf: SourceFile, rows: int, rejected: pl.Series,
                  spans: pl.Series | None = None) -> tuple[pl.Series, pl.Series]:
    """The file's line number of each row DuckDB read (in order) and of each row it rejected
    (``rejected``: DuckDB's ``line``, which counts records, the header and blank lines included: a
    line break inside a quoted value is none). Where every line after the header is one row (no
    blank line, no line break inside a field: the usual file) the rows are on lines 2, 3, ... with
    the rejected ones on theirs. Else from where each record starts (:func:`csv_records`); should
    those not agree with what DuckDB read (a file whose quotes it read otherwise, as a quote inside
    an unquoted value), the quotes are left out of the count; then each rejected record ended where
    DuckDB ended it and the quotes counted afresh after it (``spans``: the line breaks inside each
    rejected record, which its text as DuckDB read it shows); should none agree, numbered as in the
    usual file, and said in the log."""
    total = rows + rejected.len()
    if sf.lines is None:
        sf.lines = _count_lines(sf.read_path)
    if sf.lines != total + 1 and total:
        bad = rejected.to_numpy() - 1  # DuckDB's line 1 is the first record
        attempts = [(True, None), (False, None)]
        if spans is not None and spans.len():
            attempts.append((True, (rejected.to_numpy(), spans.to_numpy())))
        for quotes, resync in attempts:
            line, blank = csv_records(sf.read_path, quotes, resync)
            data = np.flatnonzero(~blank)
            data = data[data > 0]  # the header is the first record
            if len(data) == total and np.isin(bad, data).all():
                return (pl.Series(line[data[~np.isin(data, bad)]], dtype=pl.Int64),
                        pl.Series(line[bad], dtype=pl.Int64))
        log.warning("%s: its records could not be matched to its lines (%d read); the quarantine's line "
                    "numbers count records, not lines", sf.rel, total)
    lines = pl.int_range(2, total + 2, dtype=pl.Int64, eager=True)
    return lines.filter(~lines.is_in(rejected.implode())), rejected


def parquet_zone() -> str:
    """The clock a Parquet instant (a timestamp adjusted to UTC) is read on: the batch date's,
    SENTINEL_TIMEZONE or Asia/Shanghai (flows/batch.py ``today``)."""
    return os.environ.get("SENTINEL_TIMEZONE", "Asia/Shanghai")


def _parquet_text(col: str, temporal: str | None, kind: str) -> str:
    """SQL for a Parquet column's value as text, in a spelling its catalogue kind accepts. A date,
    period or datetime column may arrive typed, as a date or a timestamp (pandas and Spark write a
    date column as a timestamp at midnight): a date column takes the date (its time part, if any,
    dropped), a period column the month, a datetime column the time to the second. An instant is
    read on :func:`parquet_zone`'s clock first, so that midnight in China exported as UTC
    (16:00 the day before) is still its day. Anything else: DuckDB's text of the value."""
    if temporal == "instant":
        col = f"timezone({_sql_str(parquet_zone())}, {col})"  # the wall-clock time there, as a plain timestamp
    if temporal and kind == "date":
        return f"CAST(CAST({col} AS DATE) AS VARCHAR)"
    if temporal and kind == "period":
        return f"strftime({col}, '%Y-%m')"
    if temporal and temporal != "date" and kind == "datetime":
        return f"strftime({col}, '%Y-%m-%d %H:%M:%S')"
    return f"CAST({col} AS VARCHAR)"


def _float_text(col: str, kind: str, bits: int = 64) -> str:
    """SQL for a Parquet float column's value as text. An amount: a binary float cannot hold fen
    exactly (99.99 may be 99.99000000000001, and a single-precision 1234.56 is 1234.56005859375), so
    its text is the shortest that reads back as the same float, to 6 decimals: the fen check sees
    99.990000 and 1234.560000, and 100.005 still as 100.005000. Not for a single-precision amount of
    2^17 yuan or more, whose neighbouring floats are more than a fen apart: its shortest text may
    name another fen (200000.01 is 200000.015625, whose shortest text is 200000.02), so it is its
    exact value to 6 decimals, which the fen check quarantines. Any other column (a code, a
    household number: pandas writes an integer column with a missing value as floats) holding a
    whole number a double holds exactly (below 2^53): its digits (340503000000101, not
    340503000000101.0); else the float's shortest text (3.40503199001011e+17: an ID number a float
    cannot hold is loaded as the invalid number it has become, never as other digits)."""
    exact = f"CAST(TRY_CAST({col} AS DECIMAL(38, 6)) AS VARCHAR)"
    shortest = f"CAST(TRY_CAST(CAST({col} AS VARCHAR) AS DECIMAL(38, 6)) AS VARCHAR)"
    if kind == "amount":
        return shortest if bits > 32 else f"CASE WHEN abs({col}) < 131072 THEN {shortest} ELSE {exact} END"
    return (f"CASE WHEN isfinite({col}) AND {col} = trunc({col}) AND abs({col}) < 9007199254740992 "
            f"THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) ELSE CAST({col} AS VARCHAR) END")


def read_file(sf: SourceFile, con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The file's rows as text with canonical names, ``_file`` and ``_line``; and the rows
    DuckDB could not split (``_file``, ``_line``, ``reason``, ``record``)."""
    e = EXTRACTS[sf.extract]
    rejects = pl.DataFrame(schema={"_line": pl.Int64, "reason": pl.String, "record": pl.String})
    path = _sql_str(str(sf.read_path))
    if sf.fmt == "parquet":
        kinds = {c.name: c.kind for c in e.columns}
        sel = ", ".join((_float_text(f'"{src}"', kinds[c], sf.floats[src]) if src in sf.floats else
                         _parquet_text(f'"{src}"', sf.temporal.get(src), kinds[c])) + f' AS "{c}"'
                        for src, c in zip(sf.source_names, sf.columns) if c)
        try:
            df = frame(con, f"SELECT {sel} FROM read_parquet({path})")
        except duckdb.Error as ex:
            raise RefusedInput(sf.rel, f"Parquet file cannot be read ({type(ex).__name__})") from None
        df = df.with_columns(_line=pl.int_range(2, pl.len() + 2, dtype=pl.Int64))
    else:
        cols = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(sf.columns))) + "}"
        sel = ", ".join(f'c{i} AS "{c}"' for i, c in enumerate(sf.columns) if c)
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        try:
            df = frame(con,
                f"SELECT {sel} FROM read_csv({path}, header=true, auto_detect=false, columns={cols}, "
                f"delim=',', quote='\"', escape='\"', encoding='utf-8', ignore_errors=true, store_rejects=true)"
            )
            rej = frame(con,
                "SELECT line::BIGINT AS _line, 'malformed CSV row: ' || lower(min(error_type)) AS reason, "
                "min(csv_line) AS record FROM reject_errors GROUP BY line ORDER BY line")
        except duckdb.Error as ex:
            raise RefusedInput(sf.rel, f"CSV cannot be read ({type(ex).__name__})") from None
        # the line breaks inside each rejected record (a value quoted over several lines, or a quote
        # opened in a value and closed only lines later, as DuckDB reads it): one row, over those lines
        spans = rej["record"].str.strip_chars("\r\n").str.count_matches("\n").fill_null(0)
        loaded, rejected = _line_numbers(sf, df.height, rej["_line"], spans)
        df = df.with_columns(_line=loaded)
        if rej.height:
            rejects = rej.with_columns(_line=rejected).with_columns(reason=pl.when(spans > 0).then(pl.format(
                "{} (lines {}-{} read as one row: a quote opened and closed lines apart)", "reason", "_line",
                pl.col("_line") + spans)).otherwise("reason"))
    for c in e.columns:  # optional columns not delivered
        if c.name not in df.columns:
            df = df.with_columns(pl.lit(None, dtype=pl.String).alias(c.name))
    df = df.select(*e.column_names, pl.lit(sf.rel).alias("_file"), "_line")
    rejects = rejects.select(pl.lit(sf.rel).alias("_file"), "_line", "reason", "record")
    return df, rejects
