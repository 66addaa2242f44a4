"""Replay a landing directory as the nightly deliveries the agencies would have sent (issue 17).

    replay = Replay(Path("landing"))          # reads every file once
    replay.write(Path("n01"), night=dt.date(2026, 10, 18))                       # history up to that night
    replay.write(Path("n02"), night=dt.date(2026, 10, 19), since=dt.date(2026, 10, 18))  # one day

A night's directory holds, file by file as delivered (same names, formats, encodings and headers):

- the snapshot extracts as of that night: a death or move-out dated later still reads 正常 with an
  empty status_date, persons born later are not registered yet, vehicles and property registered
  later are absent, posts that start later are absent and posts that end later are still held
  (an empty end_date);
- the incremental extracts' rows dated within (since, night] (payments by pay_date, deaths by
  death_date, claims by claim_date, orders by the day of start_time); without `since`, every row
  dated up to the night (the history a first delivery carries). A row whose date cannot be read at
  all goes with the first delivery (the ingest quarantines it there, as a full run would);
- a header-only payments file on a night without payments (payments must be delivered nightly).

`write(out, night)` without `since` is also "one full delivery as of that night": what a single
run at the last night of a replay reads. Everything is filtered in bulk with polars; the dates are
parsed once, with the ingest's own parsers (data_contracts.normalise).
"""
from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from data_contracts.extracts import EXTRACTS
from data_contracts.ids import fold_fullwidth
from data_contracts.landing import alias_map, discover
from data_contracts.normalise import clean_text, parse_date, parse_datetime
from synthetic import messy

# incremental extract -> (column that dates a row, its kind)
DATED_BY = {"payments": ("pay_date", "date"), "death_records": ("death_date", "date"),
            "training_claims": ("claim_date", "date"), "service_orders": ("start_time", "datetime")}


@dataclass
class Part:
    """One delivered file: its rows as text under the header as delivered, plus parsed helper columns."""
    extract: str
    rel: str  # path relative to the landing directory
    fmt: str  # csv | parquet
    encoding: str | None  # utf-8, utf-8-sig or gb18030 (csv)
    frame: pl.DataFrame  # delivered columns, then helper columns starting with "_"
    delivered: list[str]  # the delivered column names, in order
    canon: dict[str, str]  # canonical column name -> the name as delivered


def _encoding(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def _read(path: Path, fmt: str) -> tuple[pl.DataFrame, str | None]:
    if fmt == "parquet":
        df = pl.read_parquet(path)
        return df.with_columns(pl.all().cast(pl.String)), None
    raw = path.read_bytes()
    enc = _encoding(raw)
    text = raw.decode(enc).encode("utf-8")
    return pl.read_csv(text, infer_schema=False), enc


def _folded(headers: list[str]) -> list[str]:
    """Header spellings folded as the ingest matches them (full-width, surrounding spaces, case)."""
    return pl.Series(headers, dtype=pl.String).to_frame("h").select(
        fold_fullwidth(pl.col("h")).str.strip_chars().str.to_lowercase())["h"].to_list()


class Replay:
    """A landing directory read once, written out night by night."""

    def __init__(self, landing: Path):
        self.landing = Path(landing)
        self.parts: list[Part] = []
        for name, files in discover(self.landing).items():
            amap = alias_map(EXTRACTS[name])
            for sf in files:
                df, enc = _read(sf.path, sf.fmt)
                canon = {amap[f]: c for c, f in zip(df.columns, _folded(df.columns)) if f in amap}
                self.parts.append(Part(name, sf.rel, sf.fmt, enc, self._helpers(name, df, canon), list(df.columns),
                                       canon))

    @staticmethod
    def _helpers(name: str, df: pl.DataFrame, canon: dict[str, str]) -> pl.DataFrame:
        """Parsed helper columns: `_day` (incremental) or the dates a snapshot row depends on."""
        c = canon.__getitem__
        if name in DATED_BY:
            col, kind = DATED_BY[name]
            day = parse_datetime(pl.col(c(col))).dt.date() if kind == "datetime" else parse_date(pl.col(c(col)))
            return df.with_columns(_day=day)
        if name == "household_registration":
            return df.with_columns(_birth=parse_date(pl.col(c("birth_date"))), _status_date=parse_date(pl.col(c("status_date"))),
                                   _status=clean_text(pl.col(c("status"))))
        if name in ("vehicle_registration", "property_registration"):
            return df.with_columns(_from=parse_date(pl.col(c("registration_date"))))
        if name == "public_servants":
            return df.with_columns(_from=parse_date(pl.col(c("start_date"))), _until=parse_date(pl.col(c("end_date"))))
        return df

    def dates(self, extract: str = "payments") -> pl.Series:
        """The distinct dates rows of an incremental extract are dated (e.g. the paydays)."""
        days = [p.frame["_day"] for p in self.parts if p.extract == extract]
        return pl.concat(days).drop_nulls().unique().sort()

    def write(self, out: Path, night: dt.date, since: dt.date | None = None) -> dict[str, int]:
        """Write the delivery of `night` (rows dated in (since, night], or up to night without
        `since`) into a fresh directory `out`. Returns the rows written per extract."""
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        rows: dict[str, int] = {}
        for p in self.parts:
            df = self._slice(p, night, since)
            rows[p.extract] = rows.get(p.extract, 0) + df.height
            if df.height:  # an incremental file with nothing dated tonight is not sent
                self._write_part(p, df, out)
        if not rows.get("payments"):  # payments must be delivered every night: a header-only file
            first = next(p for p in self.parts if p.extract == "payments")
            empty = first.frame.head(0)
            if first.fmt == "csv":
                self._write_part(first, empty, out)
            else:
                self._write_part(Part(first.extract, "payments.csv", "csv", "utf-8", first.frame, first.delivered,
                                      first.canon), empty, out)
        return rows

    @staticmethod
    def _slice(p: Part, night: dt.date, since: dt.date | None) -> pl.DataFrame:
        df = p.frame
        n = pl.lit(night)
        if p.extract in DATED_BY:
            if since is None:
                return df.filter(pl.col("_day").is_null() | (pl.col("_day") <= n))
            return df.filter((pl.col("_day") > pl.lit(since)) & (pl.col("_day") <= n))
        if p.extract == "household_registration":
            status, status_date = p.canon["status"], p.canon["status_date"]
            later = pl.col("_status").is_in(["死亡", "迁出"]) & (pl.col("_status_date") > n)
            return df.filter(pl.col("_birth").is_null() | (pl.col("_birth") <= n)).with_columns(
                pl.when(later).then(pl.lit("正常")).otherwise(pl.col(status)).alias(status),
                pl.when(later).then(pl.lit("")).otherwise(pl.col(status_date)).alias(status_date))
        if p.extract in ("vehicle_registration", "property_registration"):
            return df.filter(pl.col("_from").is_null() | (pl.col("_from") <= n))
        if p.extract == "public_servants":
            end = p.canon["end_date"]
            return df.filter(pl.col("_from").is_null() | (pl.col("_from") <= n)).with_columns(
                pl.when(pl.col("_until") > n).then(pl.lit("")).otherwise(pl.col(end)).alias(end))
        return df

    @staticmethod
    def _write_part(p: Part, df: pl.DataFrame, out: Path) -> None:
        df = df.select(p.delivered)
        target = out / p.rel
        if p.fmt == "parquet":
            messy.write_parquet(df, target)
        else:
            messy.write_csv(df, target, p.encoding or "utf-8")


def nights(first: dt.date, last: dt.date) -> list[dt.date]:
    """Every day from first to last, inclusive."""
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
