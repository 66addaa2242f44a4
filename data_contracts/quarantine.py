"""Which delivered rows cannot be loaded, and why (EXTRACTS.md: a row is quarantined only when it
cannot be interpreted at all).

- :func:`quarantine_reasons`: the extract's pandera schema (``schemas.schema_for``) validates the
  normalised frame (``lazy=True``); each failing row gets its reasons, derived from
  ``failure_cases``: "no key: c", "required value empty: c", or the reason ``schemas.REASONS``
  names for a companion flag ("unparseable date: c", "not above zero: c", ...).
- :func:`sort_rows`: the rows of one extract's delivery split into the quarantine (those, the rows
  DuckDB could not split, and every row of a key repeated in one file with different contents, but
  for an extract that keeps the earliest: ``Extract.earliest_on_repeat``) and the rows to load, one
  per key (a later file wins over an earlier one).

A quarantine record is the row as delivered (JSON of canonical column -> text), with its file and
line; never written to a log.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from data_contracts._pandera import pa
from data_contracts.extracts import Extract
from data_contracts.schemas import companions, reason_text, schema_for


def quarantine_reasons(extract: Extract, norm: pl.DataFrame) -> pl.DataFrame:
    """Validate with the extract's pandera schema; one row (``index``, ``reason``) per failing row."""
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
             for c in extract.columns for check in companions(c)}
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


@dataclass
class Sorted:
    """One extract's delivery, sorted: quarantined rows and the rows to load."""
    quarantine: pl.DataFrame  # _file, _line, reason, record
    raw: pl.DataFrame  # the rows to load, as delivered (every one: raw_<extract> keeps them all)
    stg: pl.DataFrame  # the rows to load, normalised, the last one per key
    changed: pl.DataFrame | None  # keys delivered tonight in several files with different contents


def _record(extract: Extract) -> pl.Expr:
    """The row as delivered, for the quarantine: JSON of canonical column -> text."""
    return pl.struct(extract.column_names).struct.json_encode().alias("record")


def _without(n: int, rows: pl.Series) -> pl.Series:
    """A mask of ``n`` rows, false at the row numbers ``rows``."""
    return ~pl.int_range(0, n, dtype=pl.Int64, eager=True).is_in(rows.cast(pl.Int64).implode())


def _repeated(hashes: pl.Series, keys: pl.Series) -> pl.Series:
    """The row numbers (ascending) of the rows whose key (``keys``) occurs more than once; ``hashes``
    are the keys' hashes. The hashes sorted show which ones repeat (0.25 s for 10M rows, where polars'
    ``is_duplicated`` on the keys themselves takes 3 s, and ``n_unique`` 1.3 s); the keys of those
    rows alone are then compared, so a hash shared by two different keys repeats no key."""
    ordered = hashes.sort().to_numpy()
    twice = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(twice):
        return pl.Series("i", [], dtype=pl.UInt32)
    candidates = hashes.is_in(pl.Series(twice).implode()).arg_true()
    return candidates.filter(keys.gather(candidates).is_duplicated()).alias("i")


def sort_rows(extract: Extract, raw: pl.DataFrame, norm: pl.DataFrame, rejects: pl.DataFrame) -> Sorted:
    """``raw`` (text as delivered), ``norm`` (its normalised values and companion flags, row for
    row) and ``rejects`` (rows DuckDB could not split) -> what is quarantined and what loads."""
    bad = quarantine_reasons(extract, norm)
    q = [raw[bad["index"]].with_columns(reason=bad["reason"]).select("_file", "_line", "reason", _record(extract)),
         rejects.select("_file", "_line", "reason", "record")]
    good_raw, good = raw, norm.drop(c for c in norm.columns if "__" in c)  # the companion flags
    del norm
    if bad.height:
        ok_mask = _without(raw.height, bad["index"])
        good_raw, good = good_raw.filter(ok_mask), good.filter(ok_mask)
    changed = None
    # a key delivered more than once tonight: different contents within one file are quarantined
    # (every row of the key in that file: which one is right, nobody can tell); across files the
    # later file wins and the key counts as changed. Keys are usually unique: the few repeated
    # ones are found by sorting hashes (_repeated), and only their rows are looked at.
    key = pl.col(extract.key[0]) if len(extract.key) == 1 else pl.struct(extract.key)
    idx = _repeated(good.select(key.hash()).to_series(), good.select(key).to_series())
    if idx.len():
        content = [c for c in good.columns if c not in ("_file", "_line")]
        d = good[idx].select(k=key, f="_file", h=pl.struct(content).hash(), i=idx)
        conflict = d.filter(pl.col("h").n_unique().over("k", "f") > 1)["i"]
        reason = f"duplicate key with different content in one file: {', '.join(extract.key)}"
        if conflict.len() and extract.earliest_on_repeat:
            # the key's row of the earliest date in the file loads; only the others are quarantined
            date = extract.earliest_on_repeat
            c = good[conflict].select(k=key, f=pl.col("_file"), v=pl.col(date)).with_columns(i=conflict)
            kept = c.sort("v", "i", nulls_last=True).group_by("k", "f", maintain_order=True).agg(pl.col("i").first())
            conflict = conflict.filter(~conflict.is_in(kept["i"].implode()))
            reason = f"another row of its {', '.join(extract.key)} in this file, of the earliest {date}, is loaded"
        if conflict.len():
            q.append(good_raw[conflict].select("_file", "_line", pl.lit(reason).alias("reason"), _record(extract)))
            good_raw = good_raw.filter(_without(good_raw.height, conflict))
            d = d.filter(~pl.col("i").is_in(conflict.implode()))
        if len(extract.key) == 1:
            changed = d.filter(pl.col("h").n_unique().over("k") > 1).select(pl.col("k").unique().alias(extract.key[0]))
        # the last row of each repeated key stays (d is in row order: a later file wins), with every
        # unrepeated one; for an extract that keeps the earliest, the row of the earliest date (a death
        # certified in two files of one night, the crematorium's and the hospital's)
        if extract.earliest_on_repeat:
            dated = d.with_columns(v=good[extract.earliest_on_repeat].gather(d["i"]))
            first = dated.sort("v", "i", nulls_last=True).group_by("k", maintain_order=True).agg(pl.col("i").first())
            superseded = d.filter(~pl.col("i").is_in(first["i"].implode()))["i"]
        else:
            superseded = d.filter(~pl.col("k").is_last_distinct())["i"]
        good = good.filter(_without(good.height, pl.concat([conflict, superseded])))
    return Sorted(pl.concat(q), good_raw, good, changed if changed is not None and changed.height else None)
