"""`sentinel generate`: a synthetic city's landing directory and its answer key.

    generate(persons=200_000, seed=1, out=Path("landing"))

writes `landing/` exactly as EXTRACTS.md describes and, beside it (never inside),
`landing.answer_key.csv` (every planted anomaly and decoy: kind, category, subject_type,
subject_id, program_code, variant) and `landing.manifest.json` (rows written per extract, rows
that cannot be read, the batch date). Deterministic for a seed; vectorised throughout.
"""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import numpy as np
import polars as pl

from synthetic import messy
from synthetic.anomalies import Planter
from synthetic.calendar import DEFAULT_AS_OF, Calendar
from synthetic.natural import programs, service_orders, training_claims
from synthetic.people import make_people
from synthetic.programs import gaoling, household_assets, life_events, properties, servants, vehicles

log = logging.getLogger(__name__)

H_REG = {"id_number": "公民身份号码", "name": "姓名", "sex": "性别", "birth_date": "出生日期", "household_id": "户号",
         "relation_to_head": "与户主关系", "county_code": "行政区划代码", "township": "乡镇街道", "village": "村(居)委会",
         "status": "户口状态", "status_date": "状态变更日期"}
H_DEATH = {"id_number": "身份证号", "name": "姓名", "death_date": "死亡日期", "source": "信息来源"}
H_PAY1 = {"payment_id": "发放流水号", "program_code": "项目代码", "program_name": "项目名称", "id_number": "领取人身份号码",
          "name": "领取人姓名", "household_id": "户号", "bank_account": "银行账号", "amount": "发放金额", "period": "所属期",
          "pay_date": "发放日期", "county_code": "发放区县代码", "township": "乡镇街道", "village": "村社区",
          "approved_by": "审核人身份号码"}
H_PAY2 = {**H_PAY1, "id_number": "身份证号", "name": "姓名", "bank_account": "社保卡号", "period": "发放月份",
          "county_code": "区县代码"}
H_ORDER = {"order_id": "工单编号", "elder_id_number": "服务对象身份号码", "worker_id": "服务人员编号", "provider": "服务机构",
           "service_type": "服务项目", "start_time": "服务开始时间", "end_time": "服务结束时间", "county_code": "区县代码",
           "amount": "结算金额"}
H_PROP = {"certificate_number": " Certificate_Number ", "owner_id_number": "Owner_ID_Number", "owner_name": "OWNER_NAME",
          "usage": "Usage", "area_m2": "Area_M2", "county_code": "County_Code", "registration_date": "Registration_Date",
          "status": "Status"}


def answer_key_path(out: Path) -> Path:
    return out.parent / f"{out.name}.answer_key.csv"


def manifest_path(out: Path) -> Path:
    return out.parent / f"{out.name}.manifest.json"


def build_city(persons: int, seed: int, as_of: dt.date) -> tuple[dict[str, pl.DataFrame], pl.DataFrame, Calendar, np.random.Generator]:
    cal = Calendar(as_of)
    rng = np.random.default_rng(seed)
    people = life_events(make_people(persons, rng, as_of), rng, cal)
    people = people.with_columns(account=pl.lit("62170") + pl.col("pid").cast(pl.String).str.zfill(14))
    serv = servants(people, rng, cal)
    veh = vehicles(people, rng)
    prop = properties(people, rng)
    pays, _ = programs(people, household_assets(people, veh, prop, serv), serv, rng, cal)
    city = {
        "people": people, "servants": serv, "vehicles": veh, "properties": prop,
        "payments": pl.concat([gaoling(people, cal), pays], how="vertical_relaxed"),
        "claims": training_claims(people, serv, rng, cal), "orders": service_orders(people, rng, cal),
    }
    planter = Planter(city, rng, cal, per_variant=max(2, persons // 50_000))
    key = planter.plant_all(outliers=max(10, persons // 10_000))
    return city, key, cal, rng


def generate(persons: int, seed: int, out: Path, as_of: dt.date | None = None) -> Path:
    if persons < 2_000:
        raise ValueError(f"--persons {persons}: a city needs at least 2,000 persons to hold every planted case")
    as_of = as_of or DEFAULT_AS_OF
    city, key, cal, rng = build_city(persons, seed, as_of)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    counts = _write(city, out, rng, cal)
    key = key.sort("kind", "category", "variant", "subject_id")
    key.write_csv(answer_key_path(out))
    messy.write_manifest(manifest_path(out), {"as_of": as_of.isoformat(), "persons": persons, "seed": seed,
                                              "first_period": cal.label(0), "last_period": cal.label(11), **counts})
    log.info("generated %d persons, %d answer-key rows", persons, key.height)
    return answer_key_path(out)


def _bad_rows(df: pl.DataFrame, changes: list[dict]) -> pl.DataFrame:
    """Rows that cannot be read at all: copies of real rows with one value broken."""
    rows = [df.slice(i, 1).with_columns(**{k: pl.lit(v) for k, v in ch.items()}) for i, ch in enumerate(changes)]
    return pl.concat(rows)


def _write(city: dict[str, pl.DataFrame], out: Path, rng: np.random.Generator, cal: Calendar) -> dict:
    rows, bad = {}, {}
    people = city["people"].sort("household_id", "pid")

    # household_registration: GB18030, Chinese headers, sex as 男/女 or 1/2
    n = people.height
    reg = people.select(
        id_number=messy.messy_id("id_number", n, rng), name=messy.messy_name("name", n, rng),
        sex=pl.when(pl.Series(rng.random(n) < 0.3)).then(pl.when(pl.col("sex") == "男").then(pl.lit("1")).otherwise(pl.lit("2")))
        .otherwise(pl.col("sex")),
        birth_date=messy.messy_date("birth_date", n, rng), household_id="household_id", relation_to_head="relation_to_head",
        county_code="county_code", township="township", village="village", status="reg_status",
        status_date=messy.messy_date("reg_status_date", n, rng),
    )
    messy.write_csv(reg, out / "household_registration.csv", "gb18030", H_REG)
    rows["household_registration"], bad["household_registration"] = reg.height, 0

    # death_records: UTF-8 with BOM, Chinese headers
    d = people.filter(pl.col("dr_date").is_not_null()).sort("dr_date", "pid")
    deaths = d.select(id_number=messy.messy_id("id_number", d.height, rng), name="name",
                      death_date=messy.messy_date("dr_date", d.height, rng, p=(0.3, 0.2, 0.2, 0.3)), source="dr_source")
    deaths = pl.concat([deaths, _bad_rows(deaths, [{"death_date": "2026-02-30"}, {"id_number": ""}])])
    messy.write_csv(deaths, out / "death_records.csv", "utf-8-sig", H_DEATH)
    rows["death_records"], bad["death_records"] = deaths.height, 2

    # vehicle_registration: Parquet, canonical names, values still as the registry keeps them
    v = city["vehicles"].sort("owner_pid", "vehicle_type", "registration_date")
    v = v.with_columns(plate_number=pl.lit("皖") + pl.Series(np.array(list("CEF"))[rng.integers(0, 3, v.height)]) +
                       pl.int_range(pl.len()).cast(pl.String).str.zfill(5))
    veh = v.select("plate_number", owner_id_number=messy.messy_id("owner_id_number", v.height, rng),
                   owner_name="owner_name", vehicle_type="vehicle_type",
                   registration_date=pl.col("registration_date").dt.strftime("%Y-%m-%d"), status="status",
                   assessed_value=pl.col("assessed_value").cast(pl.String))
    messy.write_parquet(veh, out / "vehicle_registration.parquet")
    rows["vehicle_registration"], bad["vehicle_registration"] = veh.height, 0

    # property_registration: a directory of two UTF-8 parts, English headers in odd case and spacing
    p = city["properties"].sort("cert", "owner_pid")
    prop = p.select(
        certificate_number=pl.format("皖({})马鞍山市不动产权第{}号", pl.col("registration_date").dt.year(),
                                     pl.col("cert").cast(pl.String).str.zfill(7)),
        owner_id_number=messy.messy_id("owner_id_number", p.height, rng), owner_name="owner_name", usage="usage",
        area_m2=pl.col("area_m2").round(2).cast(pl.String), county_code="county_code",
        registration_date=messy.messy_date("registration_date", p.height, rng), status="status")
    half = prop.height // 2
    messy.write_csv(prop.head(half), out / "property_registration" / "property_registration-1.csv", "utf-8", H_PROP)
    messy.write_csv(prop.slice(half), out / "property_registration" / "property_registration-2.csv", "utf-8", H_PROP)
    rows["property_registration"], bad["property_registration"] = prop.height, 0

    # public_servants: UTF-8, canonical headers
    s = city["servants"].sort("county_code", "pid")
    serv = s.select(id_number=messy.messy_id("id_number", s.height, rng), name="name", employer="employer", role="role",
                    county_code="county_code", township="township", village="village",
                    start_date=messy.messy_date("start_date", s.height, rng),
                    end_date=messy.messy_date("end_date", s.height, rng))
    messy.write_csv(serv, out / "public_servants.csv", "utf-8")
    rows["public_servants"], bad["public_servants"] = serv.height, 0

    # training_claims: GB18030 with canonical headers
    c = city["claims"].sort("claim_date", "pid", "certificate_number", "amount", "occupation", "training_org",
                               nulls_last=True).with_columns(seq=pl.int_range(pl.len()))
    c = c.with_columns(
        claim_id=pl.lit("PX") + pl.col("seq").cast(pl.String).str.zfill(8),
        certificate_number=pl.coalesce("certificate_number", pl.lit("ZS") + pl.col("seq").cast(pl.String).str.zfill(10)))
    claims = c.select("claim_id", id_number=messy.messy_id("id_number", c.height, rng), name="name",
                      certificate_number="certificate_number", occupation="occupation", level="level",
                      training_org="training_org", county_code="county_code",
                      claim_date=messy.messy_date("claim_date", c.height, rng),
                      amount=messy.messy_amount("amount", c.height, rng, commas=False))
    claims = pl.concat([claims, _bad_rows(claims, [{"claim_date": "unknown"}])])
    messy.write_csv(claims, out / "training_claims.csv", "gb18030")
    rows["training_claims"], bad["training_claims"] = claims.height, 1

    # service_orders: two UTF-8-with-BOM parts by year, Chinese headers
    o = city["orders"].sort("start_time", "worker_id", "pid", "end_time", "service_type").with_columns(seq=pl.int_range(pl.len()))
    orders = o.select(order_id=pl.lit("GD") + pl.col("seq").cast(pl.String).str.zfill(9),
                      elder_id_number=messy.messy_id("elder_id_number", o.height, rng), worker_id="worker_id",
                      provider="provider", service_type="service_type",
                      start_time=messy.messy_datetime("start_time", o.height, rng),
                      end_time=messy.messy_datetime("end_time", o.height, rng), county_code="county_code",
                      amount=messy.messy_amount("amount", o.height, rng), _year=pl.col("start_time").dt.year())
    orders = pl.concat([orders, _bad_rows(orders, [{"end_time": "待定"}])])
    for year, part in orders.partition_by("_year", as_dict=True, maintain_order=True).items():
        messy.write_csv(part.drop("_year"), out / f"service_orders-{year[0]}.csv", "utf-8-sig", H_ORDER)
    rows["service_orders"], bad["service_orders"] = orders.height, 1

    # payments: three parts (UTF-8 BOM, GB18030 with other aliases, Parquet); one part re-sends rows
    pays = city["payments"].sort("idx", "program_code", "county_code", "pid", "pay_date", "amount", "bank_account",
                                 "name", "id_number").with_columns(
        seq=pl.int_range(pl.len()))
    forced = city["forced_forms"]
    pays = pays.join(forced, on="pid", how="left").with_columns(
        payment_id=pl.lit("FF") + pl.col("period").str.replace("-", "") + pl.col("seq").cast(pl.String).str.zfill(9))
    n = pays.height
    pay = pays.select(
        "payment_id", "program_code", "program_name",
        id_number=messy.messy_id("id_number", n, rng, forced=pl.col("_form")),
        name=messy.messy_name("name", n, rng, forced=pl.col("_form")),
        household_id=pl.col("household_id").fill_null(""), bank_account="bank_account",
        amount=messy.messy_amount("amount", n, rng),
        period=pl.when(pl.Series(rng.random(n) < 0.3)).then(pl.col("period").str.replace("-", "")).otherwise(pl.col("period")),
        pay_date=messy.messy_date("pay_date", n, rng), county_code="county_code",
        township=pl.col("township").fill_null(""), village=pl.col("village").fill_null(""),
        approved_by=pl.col("approved_by").fill_null(""), _idx="idx", _pid="pid",
    )
    resend = pay.filter(pl.col("_pid").is_in(city["resend_pids"]["pid"].implode()) & (pl.col("_idx") == 3))
    part1 = pay.filter(pl.col("_idx") < 4)
    part1 = pl.concat([part1, _bad_rows(part1, [{"amount": "壹佰元"}, {"payment_id": ""}, {"period": "2026-13"}])])
    part2 = pl.concat([pay.filter(pl.col("_idx").is_between(4, 7)), resend])
    part3 = pay.filter(pl.col("_idx") >= 8)
    messy.write_csv(part1.drop("_idx", "_pid"), out / "payments-01.csv", "utf-8-sig", H_PAY1)
    messy.write_csv(part2.drop("_idx", "_pid"), out / "payments-02.csv", "gb18030", H_PAY2)
    messy.write_parquet(part3.drop("_idx", "_pid"), out / "payments-03.parquet")
    rows["payments"] = part1.height + part2.height + part3.height
    bad["payments"] = 3
    return {"rows_written": rows, "rows_unreadable": bad, "payments_resent": resend.height,
            "distinct_payments": n}
