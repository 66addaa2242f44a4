"""The natural (clean) city: life events, assets, posts and the programs' payments.

Everything here is eligible by construction; anomalies.py then plants the cases the rules must
find, and the decoys they must not.
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from synthetic import pools
from synthetic.calendar import Calendar
from synthetic.people import age_at

NEVER = 99  # period index meaning "not within the window"


def _dates(rng: np.random.Generator, n: int, start: dt.date, end: dt.date) -> pl.Series:
    span = (end - start).days
    d = np.datetime64(start) + rng.integers(0, max(span, 1), n).astype("timedelta64[D]")
    return pl.Series(d).cast(pl.Date)


def life_events(people: pl.DataFrame, rng: np.random.Generator, cal: Calendar) -> pl.DataFrame:
    """Deaths and move-outs before and during the window, as each source records them."""
    n = people.height
    age = people.select(age_at(pl.col("birth_date"), cal.as_of)).to_series().to_numpy()
    u = rng.random(n)
    rate_before = np.where(age >= 80, 0.03, np.where(age >= 60, 0.006, 0.0005))
    rate_during = np.where(age >= 90, 0.12, np.where(age >= 80, 0.06, np.where(age >= 60, 0.012, 0.0008)))
    died_before = u < rate_before
    died_during = (u >= rate_before) & (u < rate_before + rate_during)
    v = rng.random(n)
    moved_before = ~died_before & ~died_during & (age >= 18) & (v < 0.004)
    moved_during = ~died_before & ~died_during & (age >= 18) & (v >= 0.004) & (v < 0.007)

    before = _dates(rng, n, dt.date(2015, 1, 1), cal.first - dt.timedelta(days=1))
    during = _dates(rng, n, cal.first, cal.as_of - dt.timedelta(days=1))
    lag = pl.Series(rng.integers(0, 90, n))
    in_records = pl.Series(rng.random(n) < 0.85)
    df = people.with_columns(
        death_date=pl.when(pl.Series(died_before)).then(before).when(pl.Series(died_during)).then(during),
        move_date=pl.when(pl.Series(moved_before)).then(before).when(pl.Series(moved_during)).then(during),
        _lag=lag, _in_records=in_records,
    )
    # the registration is cancelled some weeks after a death: not yet, if that is after the batch date
    cancelled = pl.col("death_date").is_not_null() & (
        (pl.col("death_date") + pl.duration(days=pl.col("_lag")) < pl.lit(cal.as_of)) | ~pl.col("_in_records")
    )
    df = df.with_columns(
        reg_status=pl.when(cancelled).then(pl.lit("死亡")).when(pl.col("move_date").is_not_null())
        .then(pl.lit("迁出")).otherwise(pl.lit("正常")),
        reg_status_date=pl.when(cancelled).then(pl.col("death_date")).otherwise(pl.col("move_date")),
        dr_date=pl.when(pl.col("death_date").is_not_null() & pl.col("_in_records")
                        & (pl.col("death_date") >= pl.lit(cal.first) - pl.duration(days=400)))
        .then(pl.col("death_date")),
        dr_source=pl.Series(np.array(pools.DEATH_SOURCES)[rng.integers(0, 3, n)]),
    ).drop("_lag", "_in_records")
    return with_indices(df, cal)


def with_indices(df: pl.DataFrame, cal: Calendar) -> pl.DataFrame:
    """Recompute the period indices of death (earliest source) and move-out."""
    death = pl.min_horizontal(
        pl.when(pl.col("reg_status") == "死亡").then(pl.col("reg_status_date")), pl.col("dr_date")
    )
    return df.with_columns(
        death_idx=pl.when(death.is_null()).then(NEVER).otherwise(cal.idx_of(death)).cast(pl.Int32),
        move_idx=pl.when(pl.col("reg_status") == "迁出").then(cal.idx_of(pl.col("reg_status_date")))
        .otherwise(NEVER).cast(pl.Int32),
    ).with_columns(
        # last period payable: the month of death or move-out, else the whole window
        payable_until=pl.min_horizontal(pl.col("death_idx"), pl.col("move_idx"), pl.lit(11)).cast(pl.Int32),
    )


def servants(people: pl.DataFrame, rng: np.random.Generator, cal: Calendar) -> pl.DataFrame:
    """Public servants (4% of adults 22-59) and village/community committee members."""
    age = people.select(age_at(pl.col("birth_date"), cal.as_of)).to_series()
    alive = (people["death_idx"] == NEVER) & (people["move_idx"] == NEVER)
    cand = people.filter(alive & (age >= 22) & (age < 60))
    civil = cand.sample(fraction=0.04, seed=int(rng.integers(2**31)))
    role = np.array(pools.SERVANT_ROLES)[rng.choice(3, civil.height, p=[0.35, 0.4, 0.25])]
    employer = [pools.EMPLOYERS[r][i % len(pools.EMPLOYERS[r])] for i, r in enumerate(role)]
    civil = civil.with_columns(role=pl.Series(role), employer=pl.Series(employer))
    # four committee members per village, 30-65
    cadre_pool = people.filter(alive & (age >= 30) & (age <= 65)).join(civil.select("pid"), on="pid", how="anti")
    cadres = cadre_pool.with_columns(r=pl.Series(rng.random(cadre_pool.height))).filter(
        pl.col("r").rank("ordinal").over("county_code", "township", "village") <= 4
    ).drop("r")
    cadres = cadres.with_columns(
        role=pl.when(pl.col("village").str.ends_with("村")).then(pl.lit("村两委")).otherwise(pl.lit("社区两委")),
        employer=pl.col("village") + pl.when(pl.col("village").str.ends_with("村")).then(pl.lit("村民委员会"))
        .otherwise(pl.lit("居民委员会")),
    )
    df = pl.concat([civil, cadres], how="diagonal")
    n = df.height
    start = _dates(rng, n, dt.date(1998, 1, 1), cal.first - dt.timedelta(days=30))
    # 8% left their post before the window
    ended = pl.Series(rng.random(n) < 0.08)
    end = _dates(rng, n, cal.first - dt.timedelta(days=700), cal.first - dt.timedelta(days=20))
    return df.with_columns(start_date=start).with_columns(
        start_date=pl.when(ended).then(pl.min_horizontal(pl.col("start_date"), end - pl.duration(days=400)))
        .otherwise(pl.col("start_date")),
        end_date=pl.when(ended).then(end),
    ).select("pid", "id_number", "name", "employer", "role", "county_code", "township", "village",
             "start_date", "end_date", "household_id")


def vehicles(people: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """About 30% of households own a vehicle, registered to the head or the spouse."""
    owners = people.filter(pl.col("relation_to_head").is_in(["户主", "配偶"]) & (pl.col("death_idx") == NEVER))
    owners = owners.filter(pl.Series(rng.random(owners.height) < 0.2))
    owners = pl.concat([owners, owners.filter(pl.Series(rng.random(owners.height) < 0.2))])  # some own two
    n = owners.height
    vtype = np.array(pools.VEHICLE_TYPES)[rng.choice(len(pools.VEHICLE_TYPES), n, p=pools.VEHICLE_WEIGHTS)]
    status = np.array(["正常", "注销", "报废", "被盗抢"])[rng.choice(4, n, p=[0.85, 0.05, 0.08, 0.02])]
    return owners.select(owner_pid="pid", owner_id_number="id_number", owner_name="name").with_columns(
        vehicle_type=pl.Series(vtype), status=pl.Series(status),
        registration_date=_dates(rng, n, dt.date(2005, 1, 1), dt.date(2026, 9, 1)),
        assessed_value=pl.Series(np.round(rng.uniform(3_000, 300_000, n), -2)),
    )


def properties(people: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Homes owned by the head (co-owned with the spouse in 40%), second homes, parking, shops."""
    heads = people.filter(pl.col("relation_to_head") == "户主")
    spouses = people.filter(pl.col("relation_to_head") == "配偶").select("household_id", sp_pid="pid",
                                                                         sp_id="id_number", sp_name="name")
    heads = heads.join(spouses, on="household_id", how="left")
    parts = []
    for usage, share in [("住宅", 0.75), ("住宅", 0.10), ("车位", 0.08), ("商业", 0.04), ("办公", 0.01)]:
        sel = heads.filter(pl.Series(rng.random(heads.height) < share))
        parts.append(sel.with_columns(usage=pl.lit(usage), coown=pl.Series(rng.random(sel.height) < 0.4)))
    props = pl.concat(parts)
    n = props.height
    props = props.with_columns(
        cert=pl.Series(np.arange(n)), area_m2=pl.Series(np.round(rng.uniform(12, 160, n), 2)),
        registration_date=_dates(rng, n, dt.date(2003, 1, 1), dt.date(2026, 9, 1)),
        status=pl.Series(np.where(rng.random(n) < 0.05, "注销", "现势")),
    )
    own = props.select("cert", "usage", "area_m2", "registration_date", "status", "county_code",
                       owner_pid="pid", owner_id_number="id_number", owner_name="name")
    co = props.filter(pl.col("coown") & pl.col("sp_pid").is_not_null()).select(
        "cert", "usage", "area_m2", "registration_date", "status", "county_code",
        owner_pid="sp_pid", owner_id_number="sp_id", owner_name="sp_name")
    return pl.concat([own, co])


def household_assets(people: pl.DataFrame, veh: pl.DataFrame, prop: pl.DataFrame, serv: pl.DataFrame) -> pl.DataFrame:
    """Per household: does anything disqualify it from DIBAO/TEKUN (or make it a lead)?"""
    hh = people.select("pid", "household_id")
    bad_car = veh.filter(~pl.col("vehicle_type").is_in(list(pools.EXEMPT_VEHICLES)) & (pl.col("status") == "正常"))
    bad_car = bad_car.join(hh, left_on="owner_pid", right_on="pid").select("household_id").unique()
    cur = prop.filter(pl.col("status") == "现势").join(hh, left_on="owner_pid", right_on="pid")
    bad_prop = cur.filter(~pl.col("usage").is_in(["住宅", "车位"])).select("household_id").unique()
    homes = cur.filter(pl.col("usage") == "住宅").group_by("household_id").agg(pl.col("cert").n_unique().alias("n"))
    many_homes = homes.filter(pl.col("n") > 1).select("household_id")
    posts = serv.select("household_id").unique()
    events = people.filter((pl.col("death_idx") != NEVER) | (pl.col("move_idx") != NEVER)).select("household_id").unique()
    flagged = pl.concat([bad_car, bad_prop, many_homes, posts, events]).unique()
    return people.select("household_id").unique().with_columns(
        clean=~pl.col("household_id").is_in(flagged["household_id"].implode())
    )


def paydays() -> pl.DataFrame:
    """(county_code, township, pay_day): the day of the period's month each township is paid."""
    rows = [(c, t, pools.COUNTY_PAYDAY[c] + i * pools.TOWNSHIP_PAYDAY_STEP)
            for c, (_, _, towns) in pools.COUNTIES.items() for i, t in enumerate(towns)]
    return pl.DataFrame(rows, schema={"county_code": pl.String, "township": pl.String, "pay_day": pl.Int32},
                        orient="row")


def with_pay_date(df: pl.DataFrame) -> pl.DataFrame:
    """pay_date from the paying county and the township (a township the county does not have, or
    none, is paid on the county's own day)."""
    county_day = pl.DataFrame({"county_code": list(pools.COUNTY_PAYDAY), "_county_day": list(pools.COUNTY_PAYDAY.values())},
                              schema_overrides={"_county_day": pl.Int32})
    df = df.join(paydays().rename({"county_code": "_pc", "pay_day": "_pay_day"}),
                 left_on=["pay_county", "township"], right_on=["_pc", "township"], how="left", maintain_order="left")
    df = df.join(county_day.rename({"county_code": "_pc"}), left_on="pay_county", right_on="_pc", how="left",
                 maintain_order="left")
    day = pl.coalesce("_pay_day", "_county_day", pl.lit(15, pl.Int32))
    return df.with_columns(pay_date=pl.col("month_start") + pl.duration(days=day - 1)).drop("_pay_day", "_county_day")


def monthly(recipients: pl.DataFrame, program: str, cal: Calendar) -> pl.DataFrame:
    """Expand recipients (pid, id_number, name, account, place, from_idx, until_idx, amount, ...) to one
    payment per period."""
    per = cal.frame()
    df = recipients.with_columns(idx=pl.int_ranges(pl.col("from_idx"), pl.col("until_idx") + 1)).explode("idx")
    df = df.filter(pl.col("idx").is_not_null()).join(per, on="idx", how="inner")
    cols = {
        "program_code": pl.lit(program), "program_name": pl.lit(pools.PROGRAM_NAMES[program]),
        "household_id": pl.col("pay_household_id") if "pay_household_id" in df.columns else pl.lit(None, pl.String),
        "approved_by": pl.col("approved_by") if "approved_by" in df.columns else pl.lit(None, pl.String),
        "pay_county": pl.col("pay_county") if "pay_county" in df.columns else pl.col("county_code"),
    }
    return with_pay_date(df.with_columns(**cols)).select(
        "pid", "program_code", "program_name", "id_number", "name", "household_id", pl.col("account").alias("bank_account"),
        pl.col("amount").cast(pl.Float64), "period", "idx", "pay_date", pl.col("pay_county").alias("county_code"),
        "township", "village", "approved_by",
    )


def gaoling_amount(age: pl.Expr) -> pl.Expr:
    out = pl.lit(0)
    for min_age, amount in reversed(pools.GAOLING_TIERS):
        out = pl.when(age >= min_age).then(amount).otherwise(out)
    return out


def gaoling(people: pl.DataFrame, cal: Calendar) -> pl.DataFrame:
    """Every registered living person aged 80+ in a period, at the tier for their age then."""
    per = cal.frame()
    old = people.filter(age_at(pl.col("birth_date"), cal.month_end(11)) >= 80)
    df = old.join(per, how="cross").with_columns(age=age_at(pl.col("birth_date"), pl.col("month_end")))
    df = df.filter((pl.col("age") >= 80) & (pl.col("idx") <= pl.col("payable_until")))
    df = df.with_columns(amount=gaoling_amount(pl.col("age")), from_idx=pl.col("idx"), until_idx=pl.col("idx"))
    return monthly(df.drop("idx", "period", "month_start", "month_end"), "GAOLING", cal)
