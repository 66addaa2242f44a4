"""Chinese name matching for the rules: a reading that hears homophones, and a fuzzy score.

- :func:`name_readings` builds, for every distinct name, ``folded`` (minority-name separators
  ``· • . ・`` and spaces removed), ``reading`` (toneless pinyin, syllables separated by spaces)
  and ``sound`` (one private-use character per distinct syllable, so that a character-level
  fuzzy score over ``sound`` treats 英 and 瑛 as the same and 王秀英 / 王秀瑛 score 100).
  pypinyin is asked once per DISTINCT CHARACTER (a few thousand), and names are mapped through
  polars (split to characters, replace, join): no Python loop over names.
- :func:`register_similarity` registers ``name_similarity(a, b)`` in DuckDB: rapidfuzz
  ``fuzz.ratio`` (0-100) over a whole Arrow chunk at once with ``process.cpdist``. Rules compare
  ``sound`` keys with it, and only on the candidate pairs their blocking produced.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz import fuzz, process
from rapidfuzz.distance import JaroWinkler

from data_contracts import warehouse
from rules.pinyin import Style, lazy_pinyin

SEPARATORS = ["·", "•", ".", "・", "．", " ", "\u3000", "\u00a0"]
PUA = 0xE000  # private-use area: one code point per syllable


def fold(names: pl.Expr) -> pl.Expr:
    return names.str.replace_many(SEPARATORS, [""] * len(SEPARATORS)).str.strip_chars()


def name_readings(names: pl.Series) -> pl.DataFrame:
    """``name, folded, reading, sound`` for each distinct non-null name."""
    df = pl.DataFrame({"name": names.drop_nulls().unique().sort()}).with_columns(folded=fold(pl.col("name")))
    chars = df.select(pl.col("folded").str.split("").explode().alias("c")).unique().drop_nulls()
    chars = chars.filter(pl.col("c") != "").sort("c")["c"].to_list()
    syllables = [s.lower() for s in lazy_pinyin(chars, style=Style.NORMAL, errors=lambda x: list(x))]
    if len(syllables) != len(chars):  # pypinyin returned a different count: fall back per character
        syllables = [lazy_pinyin(c, style=Style.NORMAL, errors=lambda x: list(x))[0].lower() for c in chars]
    distinct = sorted(set(syllables))
    code = {s: chr(PUA + i) for i, s in enumerate(distinct)}
    sounds = [code[s] for s in syllables]
    split = pl.col("folded").str.split("")
    return df.with_columns(
        reading=split.list.eval(pl.element().replace_strict(chars, syllables, default=pl.element())).list.join(" "),
        sound=split.list.eval(pl.element().replace_strict(chars, sounds, default=pl.element())).list.join(""),
    )


def _similarity(a: pa.Array, b: pa.Array) -> pa.Array:
    nulls = pc.or_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
    scores = process.cpdist(pc.fill_null(a, "").to_pylist(), pc.fill_null(b, "").to_pylist(), scorer=fuzz.ratio,
                            dtype=np.float64, workers=1)
    return pa.array(scores, type=pa.float64(), mask=nulls)


def similarity(a: list[str], b: list[str]) -> list[float]:
    """The same score as the SQL function, for tests and notebooks."""
    return _similarity(pa.array(a, pa.string()), pa.array(b, pa.string())).to_pylist()


def unregister_similarity(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.remove_function("name_similarity")
    except Exception:  # noqa: BLE001 -- not registered
        pass


def register_similarity(con: duckdb.DuckDBPyConnection) -> None:
    unregister_similarity(con)
    con.create_function("name_similarity", _similarity, ["VARCHAR", "VARCHAR"], "DOUBLE", type="arrow",
                        null_handling="special")


def register_spark_functions(spark) -> None:
    """The rules' Python functions on Spark, as Arrow UDFs: ``name_similarity`` (the same function as
    DuckDB's) and ``sentinel_jaro_winkler`` for DuckDB's built-in jaro_winkler_similarity (rapidfuzz's
    Jaro-Winkler, prefix weight 0.1, as DuckDB's). Not Spark 4.3's own jaro_winkler_similarity: it scores
    differently (0.943 where DuckDB says 0.951), and a UDF of that name does not replace it."""
    import sys

    from pyspark import cloudpickle
    from pyspark.sql.functions import arrow_udf

    # shipped to the workers by value: they need pyarrow, numpy and rapidfuzz, not this project
    cloudpickle.register_pickle_by_value(sys.modules[__name__])

    def jaro_winkler(a: pa.Array, b: pa.Array) -> pa.Array:
        nulls = pc.or_(pc.is_null(a), pc.is_null(b)).to_numpy(zero_copy_only=False)
        scores = process.cpdist(pc.fill_null(a, "").to_pylist(), pc.fill_null(b, "").to_pylist(),
                                scorer=JaroWinkler.normalized_similarity, dtype=np.float64, workers=1)
        return pa.array(scores, type=pa.float64(), mask=nulls)

    spark.udf.register("name_similarity", arrow_udf(_similarity, "double"))
    spark.udf.register("sentinel_jaro_winkler", arrow_udf(jaro_winkler, "double"))


NAME_SOURCES = ("household_registration", "payments")  # the extracts whose names are read (rules/incremental.py)


def build_name_readings(con: duckdb.DuckDBPyConnection) -> int:
    """(Re)create table ``name_reading`` (sql/warehouse/name_reading.sql) for the names in the
    registration and the payments; its number of names. Kept as it is when it was built from the same
    names read the same way: its table comment holds their fingerprint (:func:`_readings_key`), so
    that a night that brought no new name does not read them all again (0.1-0.15 s at 1M persons).
    The whole table is rebuilt or kept, never a part: its ``sound`` codes are numbered per build.
    Always rebuilt with ``SENTINEL_FULL_RECOMPUTE=1`` (the incremental nights' equality test's full side)."""
    union = " UNION ALL ".join(f"SELECT name FROM stg_{e}" for e in NAME_SOURCES)
    key = _readings_key(con, union)
    kept = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'name_reading' "
                       "AND database_name = current_database() AND schema_name = current_schema()").fetchall()
    if kept and kept[0][0] == key and os.environ.get("SENTINEL_FULL_RECOMPUTE", "") in ("", "0"):
        return con.execute("SELECT count(*) FROM name_reading").fetchall()[0][0]
    names = pl.from_arrow(con.sql(union.replace(" UNION ALL ", " UNION ")).to_arrow_table())
    df = name_readings(names.to_series() if names.height else pl.Series("name", [], pl.String))
    con.register("_name_reading", df)
    try:
        warehouse.recreate(con, "name_reading")
        warehouse.execute(con, "INSERT INTO name_reading BY NAME SELECT name, folded, reading, sound FROM _name_reading")
        con.execute(f"COMMENT ON TABLE name_reading IS '{key}'")
    finally:
        con.unregister("_name_reading")
    return df.height


def _readings_key(con: duckdb.DuckDBPyConnection, names: str) -> str:
    """What ``name_reading`` is made from: the names (their number and the sum of their hashes, over
    every row of the sources) and the code that reads them (this module, rules/pinyin.py, pypinyin's
    version)."""
    n, total = con.execute(f"SELECT count(name), coalesce(sum(hash(name)::HUGEINT), 0)::VARCHAR FROM ({names})"
                           ).fetchall()[0]
    return f"names {n} {total}; code {_code_version()}"


@functools.cache
def _code_version() -> str:
    import pypinyin

    from rules import pinyin

    h = hashlib.sha256(pypinyin.__version__.encode())
    for f in (Path(__file__), Path(pinyin.__file__)):
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
