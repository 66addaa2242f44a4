"""The scorer's features on a tiny hand-built stg_payments, and what they must never be."""
from __future__ import annotations

import re

import duckdb
import pytest

from models import features
from tests.model_fixtures import AS_OF, create_tables, fake_id, insert, pay, reg

A, B, C = fake_id(1), fake_id(2), fake_id(3)


@pytest.fixture
def con():
    c = duckdb.connect()
    create_tables(c)
    insert(c, "stg_payments", [
        # A: GAOLING 100 for three months, paid on the 10th, account ACC1, by the registered county
        pay("a1", A, "GAOLING", 100, "2026-08", "2026-08-10", "ACC1"),
        pay("a2", A, "GAOLING", 100, "2026-09", "2026-09-10", "ACC1"),
        pay("a3", A, "GAOLING", 100, "2026-10", "2026-10-10", "ACC1"),
        # B: GAOLING 300 for Sept and Oct paid together by another county into two accounts,
        #    plus CANJI_HULI into A's account
        pay("b1", B, "GAOLING", 300, "2026-09", "2026-10-20", "ACC2", county="110106"),
        pay("b2", B, "GAOLING", 300, "2026-10", "2026-10-20", "ACC3", county="110106"),
        pay("b3", B, "CANJI_HULI", 100, "2026-10", "2026-10-10", "ACC1"),
        # C (not registered): August, then October twice; September missing
        pay("c1", C, "GAOLING", 100, "2026-08", "2026-08-10", "ACC4", county="110107"),
        pay("c2", C, "GAOLING", 100, "2026-10", "2026-10-10", "ACC4", county="110107"),
        pay("c3", C, "GAOLING", 100, "2026-10", "2026-10-10", "ACC4", county="110107"),
        # not a paid person: no ID; outside the window
        pay("n1", None, "GAOLING", 100, "2026-10", "2026-10-10", "ACC9"),
        pay("o1", A, "GAOLING", 100, "2025-01", "2025-01-10", "ACC8"),
    ])
    insert(c, "stg_household_registration", [reg(A, "110105"), reg(B, "110105")])
    yield c
    c.close()


EXPECTED = {
    # GAOLING medians: 2026-08 100, 2026-09 200 (A 100, B 300), 2026-10 100; CANJI_HULI 2026-10 100
    A: dict(n_programs=1, n_periods=3, payments_per_program_period=1.0, total_amount=300.0, amount_ratio_max=1.0,
            n_accounts=1, accounts_per_period=1 / 3, account_max_persons=2, n_paying_counties=1,
            other_county_share=0.0, pay_dates_per_period=1.0, max_periods_per_pay_date=1, max_pay_lag_days=9,
            period_gaps=0),
    B: dict(n_programs=2, n_periods=2, payments_per_program_period=1.0, total_amount=700.0, amount_ratio_max=3.0,
            n_accounts=3, accounts_per_period=1.5, account_max_persons=2, n_paying_counties=2,
            other_county_share=2 / 3, pay_dates_per_period=1.0, max_periods_per_pay_date=2,
            max_pay_lag_days=30 + 19, period_gaps=0),
    C: dict(n_programs=1, n_periods=2, payments_per_program_period=1.5, total_amount=300.0, amount_ratio_max=1.0,
            n_accounts=1, accounts_per_period=0.5, account_max_persons=1, n_paying_counties=1,
            other_county_share=0.0, pay_dates_per_period=1.0, max_periods_per_pay_date=1, max_pay_lag_days=9,
            period_gaps=1),
}


def test_window_is_the_full_months_before_the_batch_date():
    assert features.window(AS_OF, 12) == ("2025-11", "2026-10")
    assert features.window(AS_OF, 3) == ("2026-08", "2026-10")


def test_features_on_hand_built_payments(con):
    df = features.compute(con, AS_OF, 3)
    assert df["id_number"].to_list() == sorted([A, B, C])  # no ID-less payee, ordered
    assert df.columns == ["id_number", *features.FEATURE_NAMES]
    got = {r["id_number"]: r for r in df.to_dicts()}
    for who, exp in EXPECTED.items():
        assert set(exp) == set(features.FEATURE_NAMES)
        for name, value in exp.items():
            assert got[who][name] == pytest.approx(value), (name, value, got[who][name])


def test_window_excludes_older_periods(con):
    df = features.compute(con, AS_OF, 24)  # now A's 2025-01 payment into ACC8 counts
    a = df.filter(df["id_number"] == A).to_dicts()[0]
    assert a["n_accounts"] == 2 and a["n_periods"] == 4 and a["period_gaps"] == 22 - 4  # 2025-01..2026-10 is 22 months


def test_no_protected_attribute_among_features():
    tokens = set(features.PROTECTED)
    for name in features.FEATURE_NAMES:
        assert not tokens & set(name.split("_")), name
        assert not any(t in name for t in ("sex", "gender", "ethnic", "birth", "age", "region", "name"))
    # the SQL reads no protected column and does not take the ID apart (its region code is birthplace)
    sql = re.sub(r"--[^\n]*", "", features.sql()).lower()
    for pattern in (r"\bsex\b", r"\bbirth_date\b", r"\bname\b", r"substr", r"\bleft\s*\(", r"id_number\s*\[",
                    r"\bage\b", r"\bethnic"):
        assert not re.search(pattern, sql), pattern


def test_every_feature_is_documented():
    doc = (features.SQL_DIR.parent / "models" / "FEATURES.md").read_text(encoding="utf-8")
    for f in features.FEATURES:
        assert f"`{f.name}`" in doc, f.name
