"""The programs' natural (eligible) recipients, training claims and home-care orders."""
from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from synthetic import pools
from synthetic.calendar import Calendar
from synthetic.people import age_at
from synthetic.programs import NEVER, _dates, monthly

FULL_YEAR = (pl.col("payable_until") == 11) & (pl.col("death_idx") == NEVER) & (pl.col("move_idx") == NEVER)


def _approvers(serv: pl.DataFrame) -> pl.DataFrame:
    """Civil servants in post who approve entitlements, per county."""
    return serv.filter((pl.col("role") == "公务员") & pl.col("end_date").is_null()).select(
        "county_code", approved_by="id_number")


def _with_approver(df: pl.DataFrame, approvers: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    pool = approvers.with_columns(k=pl.int_range(pl.len()).over("county_code"),
                                  m=pl.len().over("county_code"))
    df = df.with_columns(r=pl.Series(rng.integers(0, 1 << 30, df.height)))
    sizes = pool.group_by("county_code").agg(m=pl.len())
    df = df.join(sizes, on="county_code", how="left").with_columns(k=pl.col("r") % pl.col("m"))
    return df.join(pool.select("county_code", "k", "approved_by"), on=["county_code", "k"], how="left",
                   maintain_order="left").drop("r", "m", "k")


def programs(people: pl.DataFrame, hh_clean: pl.DataFrame, serv: pl.DataFrame, rng: np.random.Generator,
             cal: Calendar) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Monthly payments for DIBAO, TEKUN, CANJI_*, GUER (GAOLING is programs.gaoling). Returns the
    payments and, per program, its recipients (for the planter to choose from)."""
    approvers = _approvers(serv)
    hh = people.group_by("household_id").agg(
        size=pl.len(), all_full=FULL_YEAR.all(),
    ).join(hh_clean, on="household_id")
    heads = people.filter(pl.col("relation_to_head") == "户主").join(hh, on="household_id").sort("pid")
    adult = age_at(pl.col("birth_date"), cal.first) >= 18
    # DIBAO: 3% of households, among those that pass the tests and have no life event this year
    dibao = heads.filter(pl.col("clean") & pl.col("all_full") & adult)
    dibao = dibao.filter(pl.Series(rng.random(dibao.height) < 0.03 * heads.height / max(dibao.height, 1)))
    start = np.where(rng.random(dibao.height) < 0.8, 0, rng.integers(1, 7, dibao.height))
    dibao = _with_approver(dibao.with_columns(
        from_idx=pl.Series(start, dtype=pl.Int32), until_idx=pl.lit(11), amount=pl.col("size") * pools.MONTHLY["DIBAO_PER_PERSON"],
        pay_household_id=pl.col("household_id")), approvers, rng)
    # TEKUN: elders living alone who pass the same tests
    old = age_at(pl.col("birth_date"), cal.first) >= 60
    tekun = heads.filter(pl.col("clean") & pl.col("all_full") & old & (pl.col("size") == 1)).join(
        dibao.select("household_id"), on="household_id", how="anti")
    tekun = tekun.filter(pl.Series(rng.random(tekun.height) < 0.08))
    tekun = _with_approver(tekun.with_columns(from_idx=pl.lit(0), until_idx=pl.lit(11), amount=pl.lit(pools.MONTHLY["TEKUN"]),
                                              pay_household_id=pl.col("household_id")), approvers, rng)
    # disability allowances: 1.2% and 0.8% of those 16+, half of the second also get the first
    alive = people.filter((pl.col("payable_until") >= 0) & (age_at(pl.col("birth_date"), cal.first) >= 16))
    u = rng.random(alive.height)
    sheng = alive.filter(pl.Series(u < 0.012)).with_columns(from_idx=pl.lit(0), until_idx=pl.col("payable_until"),
                                                            amount=pl.lit(pools.MONTHLY["CANJI_SHENGHUO"]))
    huli = alive.filter(pl.Series((u >= 0.006) & (u < 0.014))).with_columns(
        from_idx=pl.lit(0), until_idx=pl.col("payable_until"), amount=pl.lit(pools.MONTHLY["CANJI_HULI"]))
    # orphans: children 16 and under living with grandparents
    kids = people.filter(pl.col("relation_to_head").is_in(["孙子", "孙女"]) & FULL_YEAR
                         & (age_at(pl.col("birth_date"), cal.as_of) <= 16))
    guer = kids.filter(pl.Series(rng.random(kids.height) < 0.05)).with_columns(
        from_idx=pl.lit(0), until_idx=pl.lit(11), amount=pl.lit(pools.MONTHLY["GUER"]))
    recipients = {"DIBAO": dibao, "TEKUN": tekun, "CANJI_SHENGHUO": sheng, "CANJI_HULI": huli, "GUER": guer}
    pays = pl.concat([monthly(r, p, cal) for p, r in recipients.items()], how="vertical_relaxed")
    return pays, recipients


def training_claims(people: pl.DataFrame, serv: pl.DataFrame, rng: np.random.Generator, cal: Calendar) -> pl.DataFrame:
    """About 1% of working-age persons claim once or twice in the year, each on its own certificate."""
    age = age_at(pl.col("birth_date"), cal.as_of)
    cand = people.filter(FULL_YEAR & (age >= 18) & (age <= 58)).join(serv.select("pid"), on="pid", how="anti").sort("pid")
    cl = cand.filter(pl.Series(rng.random(cand.height) < 0.01))
    cl = pl.concat([cl, cl.filter(pl.Series(rng.random(cl.height) < 0.3))])
    return claims_for(cl, rng, cal.first, cal.as_of - dt.timedelta(days=1))


def claims_for(who: pl.DataFrame, rng: np.random.Generator, start: dt.date, end: dt.date,
               dates: pl.Series | None = None) -> pl.DataFrame:
    n = who.height
    occ = rng.integers(0, len(pools.OCCUPATIONS), n)
    return who.select("pid", "id_number", "name", "county_code").with_columns(
        occupation=pl.Series([pools.OCCUPATIONS[i][0] for i in occ], dtype=pl.String),
        level=pl.Series([pools.OCCUPATIONS[i][1] for i in occ], dtype=pl.String),
        training_org=pl.Series(np.array(pools.TRAINING_ORGS)[rng.integers(0, len(pools.TRAINING_ORGS), n)]),
        claim_date=dates if dates is not None else _dates(rng, n, start, end),
        amount=pl.Series(np.array([800.0, 1000.0, 1500.0, 2000.0])[rng.integers(0, 4, n)]),
        certificate_number=None, claim_id=None,
    )


SLOTS = [(8, 0), (10, 30), (14, 0), (16, 30)]


def service_orders(people: pl.DataFrame, rng: np.random.Generator, cal: Calendar) -> pl.DataFrame:
    """5% of elders get about four orders a month; each worker's orders sit in fixed daily slots,
    so a worker's orders never overlap."""
    age = age_at(pl.col("birth_date"), cal.first)
    elders = people.filter(FULL_YEAR & (age >= 61))
    elders = elders.filter(pl.Series(rng.random(elders.height) < 0.05))
    parts = []
    for ci, county in enumerate(sorted(pools.COUNTIES)):
        e = elders.filter(pl.col("county_code") == county)
        if e.is_empty():
            continue
        n_orders = e.height * 48
        n_workers = n_orders // 900 + 1
        k = np.arange(n_orders)
        worker = k % n_workers
        slot_index = k // n_workers
        day = slot_index // 4 + rng.integers(0, 100, n_workers)[worker]
        slot = slot_index % 4
        hour = np.array([h for h, _ in SLOTS])[slot]
        minute = np.array([m for _, m in SLOTS])[slot]
        start = (np.datetime64(cal.first, "m") + (day * 1440 + hour * 60 + minute).astype("timedelta64[m]"))
        dur = rng.integers(30, 111, n_orders)
        elder = rng.integers(0, e.height, n_orders)
        parts.append(e[elder].select("pid", pl.col("id_number").alias("elder_id_number"), "county_code").with_columns(
            worker_id=pl.Series([f"W{county[-2:]}{w:04d}" for w in range(n_workers)])[worker],
            provider=pl.Series(np.array(pools.PROVIDERS)[(worker + ci) % len(pools.PROVIDERS)]),
            service_type=pl.Series(np.array(pools.SERVICE_TYPES)[rng.integers(0, 5, n_orders)]),
            start_time=pl.Series(start.astype("datetime64[us]")),
            end_time=pl.Series((start + dur.astype("timedelta64[m]")).astype("datetime64[us]")),
            amount=pl.Series(np.round(dur / 60 * 40, 0)),
        ))
    return pl.concat(parts)
