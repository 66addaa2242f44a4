"""The generator's promises (issue 2): valid IDs, realistic distributions, every category and decoy
planted, messy files, determinism."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from pathlib import Path

import polars as pl
import pytest
from stdnum.cn import ric

from data_contracts.ids import normalise_id
from synthetic import city as gen
from synthetic.calendar import DEFAULT_AS_OF

POLICY_CATEGORIES = {
    "deceased_paid", "residency_ineligible", "age_ineligible", "duplicate_payment", "duplicate_identity",
    "identity_unverified", "shared_account", "asset_ineligible", "public_servant", "cadre_relative",
    "training_claim_abuse", "service_order_anomaly", "eligible_not_receiving", "amount_mismatch", "model_outlier",
}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "landing"
    gen.generate(persons=60_000, seed=7, out=out)
    return out


def norm_id(e: pl.Expr) -> pl.Expr:
    return normalise_id(e).alias(e.meta.output_name())


def parse_date(e: pl.Expr) -> pl.Expr:
    e = e.str.replace_all(r"[年月/]", "-").str.replace("日", "")
    return pl.coalesce(e.str.strptime(pl.Date, "%Y-%m-%d", strict=False), e.str.strptime(pl.Date, "%Y%m%d", strict=False))


def registration(landing: Path) -> pl.DataFrame:
    df = pl.read_csv(landing / "household_registration.csv", encoding="gb18030", infer_schema=False)
    df = df.rename({v: k for k, v in gen.H_REG.items()})
    return df.with_columns(id=norm_id(pl.col("id_number")), birth=parse_date(pl.col("birth_date")),
                           status_d=parse_date(pl.col("status_date")))


def payments(landing: Path) -> pl.DataFrame:
    p1 = pl.read_csv(landing / "payments-01.csv", encoding="utf8", infer_schema=False).rename(
        {v: k for k, v in gen.H_PAY1.items()})
    p2 = pl.read_csv(landing / "payments-02.csv", encoding="gb18030", infer_schema=False).rename(
        {v: k for k, v in gen.H_PAY2.items()})
    p3 = pl.read_parquet(landing / "payments-03.parquet")
    df = pl.concat([p1, p2, p3], how="vertical_relaxed").unique("payment_id", keep="last")
    return df.with_columns(id=norm_id(pl.col("id_number")),
                           period=pl.col("period").str.replace(r"^(\d{4})(\d{2})$", "$1-$2"),
                           amount=pl.col("amount").str.replace_all(",", "").cast(pl.Float64, strict=False))


def test_ids_are_valid_and_agree_with_birth_date_and_sex(landing):
    reg = registration(landing)
    assert reg["id"].n_unique() == reg.height
    assert reg["id"].str.contains(r"^\d{17}[\dX]$").all()
    # the check character agrees with python-stdnum on a sample
    sample = random.Random(1).sample(reg["id"].to_list(), 3000)
    assert all(ric.calc_check_digit(x) == x[17] for x in sample)  # stdnum takes the full number
    assert (reg["id"].str.slice(6, 8) == reg["birth"].dt.strftime("%Y%m%d")).all()
    male = reg["id"].str.slice(16, 1).cast(pl.Int32) % 2 == 1
    sex_male = reg["sex"].is_in(["男", "1"])
    assert (male == sex_male).all()


def test_messy_like_real_extracts(landing):
    raw = (landing / "household_registration.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # GB18030, not UTF-8
    assert (landing / "payments-01.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert (landing / "vehicle_registration.parquet").exists()
    assert sorted(p.name for p in (landing / "property_registration").iterdir()) == [
        "property_registration-1.csv", "property_registration-2.csv"]
    reg = pl.read_csv(landing / "household_registration.csv", encoding="gb18030", infer_schema=False)
    ids, dates = reg["公民身份号码"], reg["出生日期"]
    assert ids.str.contains("[０-９]").sum() > 0, "full-width digits"
    assert ids.str.ends_with("x").sum() > 0, "lowercase x"
    assert (ids.str.strip_chars().str.len_chars() == 15).sum() > 0, "legacy 15-digit IDs"
    for pattern in [r"^\d{4}-\d{2}-\d{2}$", r"^\d{8}$", r"^\d{4}/\d{1,2}/\d{1,2}$", r"^\d{4}年\d{1,2}月\d{1,2}日$"]:
        assert dates.str.contains(pattern).sum() > 0, pattern
    assert set(reg["性别"].unique()) == {"男", "女", "1", "2"}
    pays = payments(landing)
    assert pays["period"].str.contains(r"^\d{4}-\d{2}$").sum() > 0
    raw_amounts = pl.read_csv(landing / "payments-01.csv", infer_schema=False)["发放金额"]
    assert raw_amounts.str.contains(",").sum() > 0, "amounts written 1,200.00"
    manifest = json.loads(gen.manifest_path(landing).read_text(encoding="utf-8"))
    assert sum(manifest["rows_unreadable"].values()) >= 5


def test_distributions_like_the_census_and_the_programs(landing):
    reg = registration(landing)
    age = (pl.lit(DEFAULT_AS_OF) - pl.col("birth")).dt.total_days() / 365.2425
    ages = reg.select(age.alias("a"))["a"]
    assert 0.16 <= (ages >= 60).mean() <= 0.21
    assert 0.018 <= (ages >= 80).mean() <= 0.032
    sizes = reg.group_by("household_id").len()["len"]
    assert sizes.min() >= 1 and sizes.max() <= 6 and set(range(1, 7)) <= set(sizes.unique().to_list())
    assert set(reg["relation_to_head"].unique()) <= {"户主", "配偶", "子", "女", "父亲", "母亲", "孙子", "孙女", "兄弟姐妹", "其他"}
    assert (reg.filter(pl.col("relation_to_head") == "户主").group_by("household_id").len()["len"] == 1).all()
    assert 3 <= reg["county_code"].n_unique() <= 4
    assert reg["county_code"].str.slice(0, 4).n_unique() == 1, "one city"
    assert reg["name"].str.contains("[·•.]").sum() > 0, "minority names"

    pays = payments(landing).filter(pl.col("period").str.contains(r"^\d{4}-(0[1-9]|1[0-2])$"))
    assert pays["period"].n_unique() == 12
    n_hh = reg["household_id"].n_unique()
    dibao_hh = pays.filter(pl.col("program_code") == "DIBAO")["household_id"].n_unique()
    assert 0.02 <= dibao_hh / n_hh <= 0.04
    # GAOLING: every registered living person 80+ in the last period is paid at the right tier (planted aside)
    last = pays["period"].max()
    end = dt.date(int(last[:4]), int(last[5:]), 1).replace(day=28) + dt.timedelta(days=4)
    end = end - dt.timedelta(days=end.day)
    key = pl.read_csv(gen.answer_key_path(landing), infer_schema=False)
    planted = key.filter(pl.col("kind") == "anomaly")["subject_id"]
    deaths = pl.read_csv(landing / "death_records.csv", infer_schema=False).rename(
        {v: k for k, v in gen.H_DEATH.items()}).with_columns(id=norm_id(pl.col("id_number")))
    alive80 = reg.filter((pl.col("status") == "正常") & ~pl.col("id").is_in(deaths["id"].implode())).with_columns(
        age=(pl.lit(end).dt.year() - pl.col("birth").dt.year()
             - (pl.lit(end.month * 100 + end.day) < (pl.col("birth").dt.month().cast(pl.Int32) * 100
                                                     + pl.col("birth").dt.day())).cast(pl.Int32))
    ).filter(pl.col("age") >= 80)
    g = pays.filter((pl.col("program_code") == "GAOLING") & (pl.col("period") == last))
    unpaid = alive80.join(g, on="id", how="anti").filter(~pl.col("id").is_in(planted.implode()))
    assert unpaid.height == 0
    tier = pl.when(pl.col("age") >= 100).then(600).when(pl.col("age") >= 90).then(300).otherwise(100)
    paid = alive80.join(g, on="id").filter(~pl.col("id").is_in(planted.implode()))
    assert (paid["amount"] == paid.select(tier)["literal"].cast(pl.Float64)).all()
    # training claims by about 1% of working-age persons; home care for about 5% of elders
    claims = pl.read_csv(landing / "training_claims.csv", encoding="gb18030", infer_schema=False)
    working = ((ages >= 16) & (ages <= 60)).sum()
    assert 0.006 <= claims.select(norm_id(pl.col("id_number")))["id_number"].n_unique() / working <= 0.02
    orders = pl.concat([pl.read_csv(p, infer_schema=False) for p in landing.glob("service_orders-*.csv")])
    elders = (ages >= 60).sum()
    assert 0.03 <= orders.select(norm_id(pl.col("服务对象身份号码")))["服务对象身份号码"].n_unique() / elders <= 0.07


def test_every_category_and_decoy_is_planted(landing):
    key = pl.read_csv(gen.answer_key_path(landing), infer_schema=False)
    assert not any(p.name.startswith("answer") for p in landing.rglob("*")), "the key is never inside the landing dir"
    assert set(key.filter(pl.col("kind") == "anomaly")["category"]) == POLICY_CATEGORIES
    decoys = set(key.filter(pl.col("kind") == "decoy")["variant"])
    # the decoys the issue names
    assert {"one_household_three_members", "motorcycle_only", "scrapped_car", "other_sex", "other_county",
            "dibao_member_post_ended_before_period", "paid_for_month_of_death", "turns_80_in_period"} <= decoys
    assert set(key.filter(pl.col("kind") == "decoy")["category"]) == POLICY_CATEGORIES - {"model_outlier"}
    # subjects are well-formed per POLICY.md and every subject appears in what was delivered
    person = key.filter((pl.col("subject_type") == "person") & (pl.col("category") != "identity_unverified"))
    assert person["subject_id"].str.contains(r"^\d{17}[\dX]$").all()
    reg_ids = set(registration(landing)["id"])
    pay_ids = set(payments(landing)["id"])
    claims = pl.read_csv(landing / "training_claims.csv", encoding="gb18030", infer_schema=False)
    claim_ids = set(claims.select(norm_id(pl.col("id_number")))["id_number"])
    for row in person.iter_rows(named=True):  # a few hundred rows of the key, not the population
        assert row["subject_id"] in reg_ids | pay_ids | claim_ids, row
    # no subject is planted as both an anomaly and a decoy of one category
    both = key.group_by("category", "subject_id").agg(pl.col("kind").n_unique().alias("k")).filter(pl.col("k") > 1)
    assert both.height == 0


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root.parent)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.parent.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a" / "landing", tmp_path / "b" / "landing", tmp_path / "c" / "landing"
    gen.generate(persons=8_000, seed=3, out=a)
    gen.generate(persons=8_000, seed=3, out=b)
    gen.generate(persons=8_000, seed=4, out=c)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) >= 12
    assert da != dc


def test_cli_generate_and_refusal(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "city"
    assert main(["generate", "--persons", "5000", "--seed", "2", "--out", str(out)]) == 0
    assert (out / "household_registration.csv").exists() and gen.answer_key_path(out).exists()
    with pytest.raises(SystemExit) as e:
        main(["generate", "--persons", "10", "--seed", "2", "--out", str(out)])
    assert e.value.code == 2
    assert "--persons" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["generate", "--persons", "abc", "--out", str(out)])
    assert e.value.code == 2 and "not a whole number" in capsys.readouterr().err


def test_pay_dates_spread_like_real_payments(landing):
    """Counties pay on different days, a county's townships over several days, every period within its
    own month (issue 17): a replay straddles paydays, and a month has ended only once it is paid."""
    pays = payments(landing).filter(pl.col("program_code") == "GAOLING").with_columns(
        day=parse_date(pl.col("pay_date")), town=pl.col("township").fill_null(""))
    in_month = pays.filter(pl.col("day").dt.strftime("%Y-%m") == pl.col("period"))
    assert in_month.height >= 0.995 * pays.height  # planted back pay and duplicates aside
    first_day = in_month.group_by("county_code").agg(pl.col("day").dt.day().min().alias("d"))
    assert first_day.height >= 3 and first_day["d"].n_unique() == first_day.height
    per_county = in_month.group_by("county_code").agg(pl.col("day").dt.day().n_unique().alias("days"),
                                                      pl.col("town").n_unique().alias("towns"))
    assert (per_county["days"] >= 3).all()
    # one payday per township, the same every month
    per_town = in_month.filter(pl.col("town") != "").group_by("county_code", "town").agg(
        pl.col("day").dt.day().mode().first().alias("d"), (pl.col("day").dt.day() == pl.col("day").dt.day().mode().first())
        .mean().alias("share"))
    assert (per_town["share"] >= 0.99).all()
    assert per_town.group_by("county_code").agg(pl.col("d").n_unique().alias("n"), pl.len().alias("t")).filter(
        pl.col("n") != pl.col("t")).height == 0
