"""The scorer's features: one row per paid person, computed in DuckDB (``sql/model/model_features.sql``).

``FEATURES`` is the single declarative list the SQL, the model's metadata, the drift check and
the explanations follow. Each feature says what it measures, how a verifier reads it (``zh``)
and why it is fair to use (models/FEATURES.md has the long form). No protected attribute is a
feature: not sex, not ethnicity or anything read from a name, not birthplace (the ID's region
code), not age or the birth date. ``PROTECTED`` lists the column names the feature list must
never contain (a test asserts it).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from data_contracts import dialect, warehouse

SQL_FOLDER = "model"  # sql/model/, read through data_contracts.warehouse


@dataclass(frozen=True)
class Feature:
    name: str
    zh: str  # what a verifier reads in the evidence
    fmt: str  # int, float, share, yuan, days
    meaning: str


F = Feature

FEATURES: tuple[Feature, ...] = (
    F("n_programs", "领取项目数", "int", "distinct programs paid to the person in the window"),
    F("n_periods", "有发放的月份数", "int", "distinct periods (months) paid"),
    F("payments_per_program_period", "同项目同月平均笔数", "float",
      "payments per (program, period) paid: above 1 means several payments for one month"),
    F("total_amount", "窗口内发放总额（元）", "yuan", "yuan paid in the window, all programs"),
    F("amount_ratio_max", "单笔金额与同项目同月中位数之比（最大）", "float",
      "largest ratio of a payment to the median payment of the same program and period"),
    # (the mean ratio was tried too: it duplicated this one in every explanation)
    F("n_accounts", "收款账户数", "int", "distinct bank accounts the person was paid into"),
    F("accounts_per_period", "每月收款账户数", "float",
      "distinct accounts per period paid: 1 means a new account every month"),
    F("account_max_persons", "收款账户最多为几人收款", "int",
      "largest number of distinct persons paid into one of the person's accounts"),
    F("n_paying_counties", "发放区县数", "int", "distinct paying counties"),
    F("other_county_share", "非户籍地区县发放占比", "share",
      "share of payments made by a county other than the registered one (0 when not registered)"),
    F("pay_dates_per_period", "每月发放日期数", "float",
      "distinct pay dates per period paid: below 1 means months paid together"),
    F("max_periods_per_pay_date", "同一发放日补发的月份数（最多）", "int",
      "most periods paid on one pay date (bursts, back pay)"),
    F("max_pay_lag_days", "发放日距所属月初天数（最长）", "days",
      "longest delay from the first day of a period to its pay date (negative: paid in advance)"),
    F("period_gaps", "发放间断的月份数", "int",
      "months missing between the first and last period paid"),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}

# Columns that are protected attributes or proxies for them; never a feature.
PROTECTED = ("sex", "gender", "ethnicity", "nation", "minzu", "name", "surname", "birth_date", "birthplace",
             "region_code", "id_region", "age", "birth_year")


STAGED = ("stg_payments", "stg_household_registration")  # what model_features.sql reads


def window(as_of: dt.date, months: int) -> tuple[str, str]:
    """The scoring window: the ``months`` full months before the batch date, as ``YYYY-MM`` bounds."""
    last = (as_of.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    idx = last.year * 12 + last.month - 1 - (months - 1)
    first = dt.date(idx // 12, idx % 12 + 1, 1)
    return first.strftime("%Y-%m"), last.strftime("%Y-%m")


def sql() -> str:
    return warehouse.load(SQL_FOLDER, "model_features")


def compute(con: duckdb.DuckDBPyConnection, as_of: dt.date, window_months: int = 12, *, engine=None,
            batch_id: int | None = None) -> pl.DataFrame:
    """One row per paid person: ``id_number`` and the columns of ``FEATURE_NAMES`` (Float64), in order.
    ``engine``: a :class:`data_contracts.spark.Spark` to compute them on (the same SQL in Spark's dialect,
    over this batch's stage). Rounded to 9 decimals, so that a sum added up in another order on another
    engine gives the same features."""
    period_from, period_to = window(as_of, window_months)
    params = {"period_from": period_from, "period_to": period_to}
    if engine is None:
        df = warehouse.frame(con, sql(), params)
    else:
        engine.stage_tables(con, batch_id, list(STAGED))
        df = pl.from_arrow(engine.arrow(dialect.to_spark(sql(), params)))
    missing = [n for n in FEATURE_NAMES if n not in df.columns]
    if missing:
        raise RuntimeError(f"sql/model/model_features.sql does not produce {missing}")
    return df.select("id_number", *[pl.col(n).cast(pl.Float64).fill_null(0.0).fill_nan(0.0).round(9)
                                    for n in FEATURE_NAMES])
