"""Value normalisation (data_contracts.normalise): every spelling EXTRACTS.md lists, table-driven."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from data_contracts.normalise import (clean_name, clean_sex, clean_text, parse_amount, parse_date,
                                      parse_datetime, parse_period)


def apply(fn, value):
    return pl.DataFrame({"v": [value]}, schema={"v": pl.String}).select(fn(pl.col("v"))).item()


@pytest.mark.parametrize("raw, expected", [
    ("2024-03-05", dt.date(2024, 3, 5)),
    ("20240305", dt.date(2024, 3, 5)),
    ("2024/3/5", dt.date(2024, 3, 5)),
    ("2024/03/05", dt.date(2024, 3, 5)),
    ("2024年3月5日", dt.date(2024, 3, 5)),
    ("2024-3-5", dt.date(2024, 3, 5)),
    ("  2024-03-05 ", dt.date(2024, 3, 5)),
    ("２０２４－０３－０５", dt.date(2024, 3, 5)),
    ("２０２４／３／５", dt.date(2024, 3, 5)),
    ("2024-02-30", None),
    ("2024-13-01", None),
    ("20241301", None),
    ("05/03/2024", None),
    ("abc", None),
    ("", None),
    (None, None),
])
def test_parse_date(raw, expected):
    assert apply(parse_date, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2024-03-05 08:30", dt.datetime(2024, 3, 5, 8, 30)),
    ("2024-03-05 08:30:15", dt.datetime(2024, 3, 5, 8, 30, 15)),
    ("2024/3/5 8:30", dt.datetime(2024, 3, 5, 8, 30)),
    ("2024/03/05 18:05:09", dt.datetime(2024, 3, 5, 18, 5, 9)),
    ("2024年3月5日 8:30", dt.datetime(2024, 3, 5, 8, 30)),
    ("20240305 08:30", dt.datetime(2024, 3, 5, 8, 30)),
    ("2024-03-05T08:30:00", dt.datetime(2024, 3, 5, 8, 30)),
    ("２０２４－０３－０５　０８：３０", dt.datetime(2024, 3, 5, 8, 30)),
    ("2024-03-05", dt.datetime(2024, 3, 5)),
    ("2024-03-05 25:00", None),
    ("2024-03-05 08:61", None),
    ("08:30", None),
    ("", None),
])
def test_parse_datetime(raw, expected):
    assert apply(parse_datetime, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("2024-03", "2024-03"),
    ("202403", "2024-03"),
    ("2024/03", "2024-03"),
    ("2024/3", "2024-03"),
    ("2024-3", "2024-03"),
    ("2024年3月", "2024-03"),
    ("2024年12月", "2024-12"),
    (" ２０２４０３ ", "2024-03"),
    ("2024-13", None),
    ("202400", None),
    ("2024", None),
    ("March 2024", None),
    ("", None),
])
def test_parse_period(raw, expected):
    assert apply(parse_period, raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("1,200.00", Decimal("1200.00")),
    ("1200", Decimal("1200.00")),
    (" 1200.5 ", Decimal("1200.50")),
    ("１，２００．５０", Decimal("1200.50")),
    ("￥1,200", Decimal("1200.00")),
    ("300元", Decimal("300.00")),
    ("-35.00", Decimal("-35.00")),
    ("0.5", Decimal("0.50")),
    ("1.2.3", None),
    ("abc", None),
    ("", None),
])
def test_parse_amount(raw, expected):
    assert apply(parse_amount, raw) == expected


@pytest.mark.parametrize("fn, raw, expected", [
    (clean_text, "  朝阳街道 ", "朝阳街道"),
    (clean_text, "ＡＢＣ１２３", "ABC123"),
    (clean_text, "   ", None),
    (clean_name, "阿依古丽•买买提", "阿依古丽·买买提"),
    (clean_name, "阿依古丽.买买提", "阿依古丽·买买提"),
    (clean_name, "阿依古丽·买买提", "阿依古丽·买买提"),
    (clean_name, " 张三 ", "张三"),
    (clean_sex, "1", "男"),
    (clean_sex, "2", "女"),
    (clean_sex, "男", "男"),
    (clean_sex, " 女 ", "女"),
    (clean_sex, "２", "女"),
])
def test_text_columns(fn, raw, expected):
    assert apply(fn, raw) == expected
