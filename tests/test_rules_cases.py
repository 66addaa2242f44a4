"""Table-driven tests of every rule on a real DuckDB: positive, negative and boundary cases.

Each case builds small stg_* tables (the ingest's own DDL; ID columns normalised and validated by
data_contracts.ids, so a 15-digit number is upgraded as in a real batch), runs one rule, and
compares the subjects it raised.
"""
from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest

from data_contracts.extracts import EXTRACTS
from data_contracts.ids import id_valid, normalise_id
from data_contracts.ingest import COMMON_DDL, ddl
from rules import run_rules

AS_OF = dt.date(2026, 11, 1)
W = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def pid(birth: str, seq: int, region: str = "340503") -> str:
    """A valid 18-digit ID (test helper: a handful of values, so a plain loop is fine)."""
    body = f"{region}{birth}{seq:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, W)) % 11]


def legacy15(id18: str) -> str:
    return id18[:6] + id18[8:17]


def person(id_number, name, birth, sex="男", household="H1", status="正常", status_date=None, county="340503",
           relation="户主"):
    return dict(id_number=id_number, name=name, sex=sex, birth_date=dt.date.fromisoformat(birth),
                household_id=household, relation_to_head=relation, county_code=county, township="解放路街道",
                village="东湖社区", status=status, status_date=dt.date.fromisoformat(status_date) if status_date else None)


_seq = iter(range(10**9))


def pay(id_number, period, program="GAOLING", amount=100, name="张三", account=None, household=None, county="340503",
        approved_by=None, payment_id=None):
    n = next(_seq)
    return dict(payment_id=payment_id or f"P{n:06d}", program_code=program, id_number=id_number, name=name,
                household_id=household, bank_account=account or f"6217{n:08d}", amount=amount, period=period,
                pay_date=dt.date.fromisoformat(period + "-15"), county_code=county, township="解放路街道",
                village="东湖社区", approved_by=approved_by)


def make_db(tables: dict[str, list[dict]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for stmt in COMMON_DDL:
        con.execute(stmt)
    for e in EXTRACTS.values():
        for stmt in ddl(e):
            con.execute(stmt)
    for name, rows in tables.items():
        if not rows:
            continue
        e = EXTRACTS[name]
        df = pl.DataFrame(rows, infer_schema_length=None)
        for c in e.columns:
            if c.name not in df.columns:
                df = df.with_columns(pl.lit(None).alias(c.name))
        for c in e.id_columns:
            df = df.with_columns(normalise_id(pl.col(c).cast(pl.String)).alias(c))
            df = df.with_columns(id_valid(pl.col(c), AS_OF).alias(f"{c}_valid"))
        con.register("_rows", df)
        con.execute(f"INSERT INTO stg_{name} BY NAME SELECT * FROM _rows")
        con.unregister("_rows")
    return con


def hits(con, rule_id, as_of: dt.date = AS_OF) -> list[tuple]:
    run_rules(con, as_of, 1, only=[rule_id])
    return con.execute("SELECT subject_type, subject_id FROM rule_hits WHERE rule_id = ? ORDER BY subject_id",
                       [rule_id]).fetchall()


A = pid("19460531", 11)   # turns 80 on 2026-05-31, the last day of May
B = pid("19400101", 13)
C = pid("19400101", 24)
D = pid("19300202", 35)
E = pid("19860101", 47)


def P(id_, **kw):
    return ("person", id_)


CASES = [
    # ---- deceased_paid: the month of death is payable
    dict(description="paid for the month of death only", rule="deceased_paid",
         tables={"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-15")],
                 "payments": [pay(B, "2026-02"), pay(B, "2026-03")]}, expected=[]),
    dict(description="paid for the month after death", rule="deceased_paid",
         tables={"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-31")],
                 "payments": [pay(B, "2026-03"), pay(B, "2026-04")]}, expected=[P(B)]),
    dict(description="death only in death_records", rule="deceased_paid",
         tables={"household_registration": [person(B, "张三", "1940-01-01")],
                 "death_records": [dict(id_number=B, name="张三", death_date=dt.date(2026, 3, 10), source="火化")],
                 "payments": [pay(B, "2026-04")]}, expected=[P(B)]),
    dict(description="earliest source wins: record before the registration", rule="deceased_paid",
         tables={"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-06-01")],
                 "death_records": [dict(id_number=B, name="张三", death_date=dt.date(2026, 3, 10), source="医院")],
                 "payments": [pay(B, "2026-04")]}, expected=[P(B)]),
    dict(description="death record under the 15-digit form", rule="deceased_paid",
         tables={"household_registration": [person(B, "张三", "1940-01-01")],
                 "death_records": [dict(id_number=legacy15(B), name="张三", death_date=dt.date(2026, 3, 10), source="公安")],
                 "payments": [pay(B, "2026-04")]}, expected=[P(B)]),
    dict(description="a payee the registration no longer lists, dead by the death record", rule="deceased_paid",
         tables={"household_registration": [person(A, "李四", "1950-01-01")],
                 "death_records": [dict(id_number=B, name="张三", death_date=dt.date(2026, 3, 10), source="火化")],
                 "payments": [pay(B, "2026-03"), pay(B, "2026-04")]}, expected=[P(B)]),
    dict(description="home care ordered after the death of an elder only the death record knows",
         rule="service_order_after_death",
         tables={"household_registration": [person(A, "李四", "1950-01-01")],
                 "death_records": [dict(id_number=B, name="张三", death_date=dt.date(2026, 3, 10), source="火化")],
                 "service_orders": [dict(order_id="O1", elder_id_number=B, worker_id="W1", provider="颐康",
                                         service_type="助餐", start_time=dt.datetime(2026, 3, 11, 9),
                                         end_time=dt.datetime(2026, 3, 11, 10), county_code="340503", amount=40)]},
         expected=[P(B)]),
    # ---- residency_ineligible
    dict(description="paid for the month of the move", rule="residency_ineligible",
         tables={"household_registration": [person(B, "张三", "1940-01-01", status="迁出", status_date="2026-02-10")],
                 "payments": [pay(B, "2026-02")]}, expected=[]),
    dict(description="paid after the month of the move", rule="residency_ineligible",
         tables={"household_registration": [person(B, "张三", "1940-01-01", status="迁出", status_date="2026-02-10")],
                 "payments": [pay(B, "2026-02"), pay(B, "2026-03", program="CANJI_HULI")]}, expected=[P(B)]),
    # ---- age_ineligible
    dict(description="GAOLING in the month someone turns 80 (birthday on its last day)", rule="age_ineligible_gaoling",
         tables={"household_registration": [person(A, "李四", "1946-05-31")], "payments": [pay(A, "2026-05")]},
         expected=[]),
    dict(description="GAOLING the month before turning 80", rule="age_ineligible_gaoling",
         tables={"household_registration": [person(A, "李四", "1946-05-31")], "payments": [pay(A, "2026-04")]},
         expected=[P(A)]),
    dict(description="GUER in the month of the 18th birthday", rule="age_ineligible_guer",
         tables={"household_registration": [person(pid("20080630", 21), "小明", "2008-06-30")],
                 "payments": [pay(pid("20080630", 21), "2026-05", "GUER", 1500),
                              pay(pid("20080630", 21), "2026-06", "GUER", 1500)]},
         expected=[P(pid("20080630", 21))]),
    dict(description="GUER while 17", rule="age_ineligible_guer",
         tables={"household_registration": [person(pid("20080630", 21), "小明", "2008-06-30")],
                 "payments": [pay(pid("20080630", 21), "2026-05", "GUER", 1500)]}, expected=[]),
    dict(description="PEIXUN on the 16th birthday and the day before the 61st", rule="age_ineligible_peixun",
         tables={"household_registration": [person(pid("20100315", 31), "甲", "2010-03-15"),
                                            person(pid("19650316", 41), "乙", "1965-03-16")],
                 "training_claims": [
                     dict(claim_id="C1", id_number=pid("20100315", 31), name="甲", certificate_number="Z1",
                          county_code="340503", claim_date=dt.date(2026, 3, 15), amount=800),
                     dict(claim_id="C2", id_number=pid("19650316", 41), name="乙", certificate_number="Z2",
                          county_code="340503", claim_date=dt.date(2026, 3, 15), amount=800)]},
         expected=[]),
    dict(description="PEIXUN the day before the 16th birthday and on the 61st", rule="age_ineligible_peixun",
         tables={"household_registration": [person(pid("20100315", 31), "甲", "2010-03-15"),
                                            person(pid("19650315", 41), "乙", "1965-03-15")],
                 "training_claims": [
                     dict(claim_id="C1", id_number=pid("20100315", 31), name="甲", certificate_number="Z1",
                          county_code="340503", claim_date=dt.date(2026, 3, 14), amount=800),
                     dict(claim_id="C2", id_number=pid("19650315", 41), name="乙", certificate_number="Z2",
                          county_code="340503", claim_date=dt.date(2026, 3, 15), amount=800)]},
         expected=sorted([P(pid("20100315", 31)), P(pid("19650315", 41))])),
    dict(description="home care on the 60th birthday, and the day before it", rule="age_ineligible_home_care",
         tables={"household_registration": [person(pid("19660610", 51), "丙", "1966-06-10"),
                                            person(pid("19660611", 61), "丁", "1966-06-11")],
                 "service_orders": [
                     dict(order_id="O1", elder_id_number=pid("19660610", 51), worker_id="W1",
                          start_time=dt.datetime(2026, 6, 10, 9), end_time=dt.datetime(2026, 6, 10, 11),
                          county_code="340503", amount=80),
                     dict(order_id="O2", elder_id_number=pid("19660611", 61), worker_id="W2",
                          start_time=dt.datetime(2026, 6, 10, 9), end_time=dt.datetime(2026, 6, 10, 11),
                          county_code="340503", amount=80)]},
         expected=[P(pid("19660611", 61))]),
    dict(description="home care for an elder of 75", rule="age_ineligible_home_care",
         tables={"household_registration": [person(pid("19510610", 51), "丙", "1951-06-10")],
                 "service_orders": [
                     dict(order_id="O1", elder_id_number=pid("19510610", 51), worker_id="W1",
                          start_time=dt.datetime(2026, 6, 10, 9), end_time=dt.datetime(2026, 6, 10, 11),
                          county_code="340503", amount=80)]},
         expected=[]),
    # ---- duplicate_payment
    dict(description="the 15- and 18-digit forms of one ID paid twice for one period", rule="duplicate_payment",
         tables={"household_registration": [person(B, "张三", "1940-01-01")],
                 "payments": [pay(B, "2026-04"), pay(legacy15(B), "2026-04", county="340504")]}, expected=[P(B)]),
    dict(description="two programs in one period; two periods", rule="duplicate_payment",
         tables={"household_registration": [person(B, "张三", "1940-01-01")],
                 "payments": [pay(B, "2026-04", "CANJI_HULI"), pay(B, "2026-04", "CANJI_SHENGHUO"),
                              pay(B, "2026-05", "CANJI_HULI")]}, expected=[]),
    # ---- duplicate_identity
    dict(description="homophone names, same county, sex, birth date, program and period", rule="duplicate_identity",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01", sex="男", household="H1"),
                                            person(pid("19400101", 13, "340522"), "王秀瑛", "1940-01-01", household="H2")],
                 "payments": [pay(B, "2026-04", name="王秀英"),
                              pay(pid("19400101", 13, "340522"), "2026-04", name="王秀瑛")]},
         expected=[P(max(B, pid("19400101", 13, "340522")))]),
    dict(description="same name but other sex / other county", rule="duplicate_identity",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01", household="H1"),
                                            person(C, "王秀英", "1940-01-01", sex="女", household="H2"),
                                            person(pid("19400101", 13, "340522"), "王秀英", "1940-01-01",
                                                   household="H3", county="340504")],
                 "payments": [pay(B, "2026-04"), pay(C, "2026-04"),
                              pay(pid("19400101", 13, "340522"), "2026-04", county="340504")]},
         expected=[]),
    dict(description="same block, different names", rule="duplicate_identity",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01", household="H1"),
                                            person(pid("19400101", 15), "李建国", "1940-01-01", household="H2")],
                 "payments": [pay(B, "2026-04"), pay(pid("19400101", 15), "2026-04")]},
         expected=[]),
    # ---- identity_unverified
    dict(description="wrong check character; valid but unknown; other person's name", rule="identity_unverified",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01")],
                 "payments": [pay(B[:-1] + ("0" if B[-1] != "0" else "1"), "2026-04", "CANJI_HULI"),
                              pay(pid("19700101", 17, "320102"), "2026-04", "CANJI_HULI"),
                              pay(B, "2026-05", name="钱英富")]},
         expected=sorted([P(B[:-1] + ("0" if B[-1] != "0" else "1")), P(pid("19700101", 17, "320102")), P(B)])),
    dict(description="15-digit form, homophone, minority separators and spaces all verify", rule="identity_unverified",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01"),
                                            person(C, "阿依古丽·吐尔逊", "1940-01-01", sex="女", household="H2")],
                 "payments": [pay(legacy15(B), "2026-04", name="王秀瑛"), pay(B, "2026-05", name="王秀英 "),
                              pay(C, "2026-04", name="阿依古丽•吐尔逊"), pay(C, "2026-05", name="阿依古丽.吐尔逊")]},
         expected=[]),
    dict(description="payments with no ID number are each a finding of their own; an empty payee name does not match",
         rule="identity_unverified",
         tables={"household_registration": [person(B, "王秀英", "1940-01-01")],
                 "payments": [pay(None, "2026-04", "CANJI_HULI", payment_id="PX1", county="340503"),
                              pay(None, "2026-04", "CANJI_HULI", payment_id="PX2", county="340521"),
                              pay(B, "2026-05", name=None)]},
         expected=sorted([P("（空）PX1", id_number=None), P("（空）PX2", id_number=None), P(B)])),
    # ---- shared_account
    dict(description="three persons of two households in one account", rule="shared_account",
         tables={"household_registration": [person(B, "甲", "1940-01-01", household="H1"),
                                            person(C, "乙", "1940-01-01", sex="女", household="H1"),
                                            person(D, "丙", "1930-02-02", household="H2")],
                 "payments": [pay(B, "2026-04", account="ACC1"), pay(C, "2026-04", account="ACC1"),
                              pay(D, "2026-04", account="ACC1", amount=300)]},
         expected=[("account", "ACC1")]),
    dict(description="three of one household; two households in another period", rule="shared_account",
         tables={"household_registration": [person(B, "甲", "1940-01-01", household="H1"),
                                            person(C, "乙", "1940-01-01", sex="女", household="H1"),
                                            person(E, "丁", "1986-01-01", household="H1"),
                                            person(D, "丙", "1930-02-02", household="H2")],
                 "payments": [pay(B, "2026-04", account="ACC1"), pay(C, "2026-04", account="ACC1"),
                              pay(E, "2026-04", "CANJI_HULI", account="ACC1"),
                              pay(B, "2026-05", account="ACC2"), pay(D, "2026-05", account="ACC2", amount=300)]},
         expected=[]),
]

VEH = dict(owner_name="甲", registration_date=dt.date(2020, 1, 1), assessed_value=50000)


def _dibao_household(extra_tables: dict) -> dict:
    t = {"household_registration": [person(E, "甲", "1986-01-01", household="H9"),
                                    person(pid("19880202", 22), "乙", "1988-02-02", sex="女", household="H9",
                                           relation="配偶")],
         "payments": [pay(E, "2026-04", "DIBAO", 1480, household="H9"), pay(E, "2026-05", "DIBAO", 1480, household="H9")]}
    for k, v in extra_tables.items():
        t[k] = t.get(k, []) + v
    return t


SPOUSE = pid("19880202", 22)


def prop(cert, owner, usage, status="现势"):
    return dict(certificate_number=cert, owner_id_number=owner, owner_name="x", usage=usage, area_m2=80,
                county_code="340503", registration_date=dt.date(2019, 1, 1), status=status)


def post(id_number, role, start, end=None, name="乙"):
    return dict(id_number=id_number, name=name, employer="区民政局", role=role, county_code="340503",
                start_date=dt.date.fromisoformat(start), end_date=dt.date.fromisoformat(end) if end else None)


CASES += [
    dict(description="a member owns a car", rule="asset_ineligible_vehicle",
         tables=_dibao_household({"vehicle_registration": [dict(plate_number="皖C1", owner_id_number=SPOUSE,
                                                                vehicle_type="小型轿车", status="正常", **VEH)]}),
         expected=[("household", "H9")]),
    dict(description="exempt vehicles: motorcycle, tricycle, disabled carriage, scrapped or stolen car",
         rule="asset_ineligible_vehicle",
         tables=_dibao_household({"vehicle_registration": [
             dict(plate_number="皖C1", owner_id_number=E, vehicle_type="普通二轮摩托车", status="正常", **VEH),
             dict(plate_number="皖C2", owner_id_number=E, vehicle_type="三轮汽车", status="正常", **VEH),
             dict(plate_number="皖C3", owner_id_number=E, vehicle_type="残疾人专用车", status="正常", **VEH),
             dict(plate_number="皖C4", owner_id_number=SPOUSE, vehicle_type="小型轿车", status="报废", **VEH),
             dict(plate_number="皖C5", owner_id_number=SPOUSE, vehicle_type="小型轿车", status="被盗抢", **VEH)]}),
         expected=[]),
    dict(description="a current shop; two homes between members", rule="asset_ineligible_property",
         tables=_dibao_household({"property_registration": [prop("Z1", E, "商业"), prop("Z2", E, "住宅"),
                                                            prop("Z3", SPOUSE, "住宅")]}),
         expected=[("household", "H9")]),
    dict(description="a cancelled shop, a home and a parking space, a co-owned home", rule="asset_ineligible_property",
         tables=_dibao_household({"property_registration": [prop("Z1", E, "商业", "注销"), prop("Z2", E, "住宅"),
                                                            prop("Z2", SPOUSE, "住宅"), prop("Z4", SPOUSE, "车位")]}),
         expected=[]),
    dict(description="a member in post as a public servant", rule="public_servant_household",
         tables=_dibao_household({"public_servants": [post(SPOUSE, "公务员", "2015-03-01")]}),
         expected=[P(E)]),
    dict(description="a post that ended before the period; a post that began after it", rule="public_servant_household",
         tables=_dibao_household({"public_servants": [post(SPOUSE, "事业单位", "2015-03-01", "2026-03-31"),
                                                      post(E, "国有企业", "2026-06-01")]}),
         expected=[]),
    dict(description="committee member in post; approved by a household member", rule="cadre_relative_committee",
         tables=_dibao_household({"public_servants": [post(SPOUSE, "村两委", "2015-03-01")]}),
         expected=[("household", "H9")]),
    dict(description="committee post ended before the period", rule="cadre_relative_committee",
         tables=_dibao_household({"public_servants": [post(SPOUSE, "社区两委", "2015-03-01", "2026-03-31")]}),
         expected=[]),
    dict(description="approved by the spouse", rule="cadre_relative_approver",
         tables={**_dibao_household({}), "payments": [pay(E, "2026-04", "DIBAO", 1480, household="H9",
                                                          approved_by=SPOUSE)]},
         expected=[("household", "H9")]),
    dict(description="approved by an official of another household", rule="cadre_relative_approver",
         tables={**_dibao_household({}), "payments": [pay(E, "2026-04", "DIBAO", 1480, household="H9",
                                                          approved_by=B)]},
         expected=[]),
]


def claim(cid, id_number, cert, date):
    return dict(claim_id=cid, id_number=id_number, name="甲", certificate_number=cert, county_code="340503",
                claim_date=dt.date.fromisoformat(date), amount=1000)


def order(oid, elder, worker, start, minutes):
    s = dt.datetime.fromisoformat(start)
    return dict(order_id=oid, elder_id_number=elder, worker_id=worker, provider="颐康", service_type="助洁",
                start_time=s, end_time=s + dt.timedelta(minutes=minutes), county_code="340503", amount=60)


CASES += [
    dict(description="PEIXUN by a servant in post; by one whose post began after the claim", rule="public_servant_peixun",
         tables={"household_registration": [person(E, "甲", "1986-01-01"), person(SPOUSE, "乙", "1988-02-02")],
                 "training_claims": [claim("C1", E, "Z1", "2026-05-01"), claim("C2", SPOUSE, "Z2", "2026-05-01")],
                 "public_servants": [post(E, "事业单位", "2012-01-01"), post(SPOUSE, "事业单位", "2026-10-12")]},
         expected=[P(E)]),
    dict(description="one certificate claimed by two people: both are subjects", rule="training_certificate_reused",
         tables={"training_claims": [claim("C1", E, "Z1", "2026-01-01"), claim("C2", SPOUSE, "Z1", "2026-07-01"),
                                     claim("C3", B, "Z3", "2026-07-01")]},
         expected=sorted([P(E), P(SPOUSE)])),
    dict(description="four claims in a year; three in a year; four across two years", rule="training_claims_per_year",
         tables={"training_claims": [claim(f"A{i}", E, f"ZA{i}", f"2026-0{i}-10") for i in range(1, 5)]
                 + [claim(f"B{i}", SPOUSE, f"ZB{i}", f"2026-0{i}-10") for i in range(1, 4)]
                 + [claim("C1", B, "ZC1", "2025-11-10"), claim("C2", B, "ZC2", "2025-12-10"),
                    claim("C3", B, "ZC3", "2026-01-10"), claim("C4", B, "ZC4", "2026-02-10")]},
         expected=[P(E)]),
    dict(description="three claims in a year; four across two years", rule="training_claims_per_year",
         tables={"training_claims": [claim(f"B{i}", SPOUSE, f"ZB{i}", f"2026-0{i}-10") for i in range(1, 4)]
                 + [claim("C1", B, "ZC1", "2025-11-10"), claim("C2", B, "ZC2", "2025-12-10"),
                    claim("C3", B, "ZC3", "2026-01-10"), claim("C4", B, "ZC4", "2026-02-10")]},
         expected=[]),
    dict(description="a certificate claimed once each", rule="training_certificate_reused",
         tables={"training_claims": [claim("C1", E, "Z1", "2026-01-01"), claim("C3", B, "Z3", "2026-07-01")]},
         expected=[]),
    dict(description="PEIXUN by a servant whose post ended before the claim", rule="public_servant_peixun",
         tables={"household_registration": [person(E, "甲", "1986-01-01")],
                 "training_claims": [claim("C1", E, "Z1", "2026-05-01")],
                 "public_servants": [post(E, "公务员", "2012-01-01", "2026-04-30")]},
         expected=[]),
    dict(description="an order the day after death; an order on the day of death", rule="service_order_after_death",
         tables={"household_registration": [person(B, "甲", "1940-01-01", status="死亡", status_date="2026-05-10"),
                                            person(C, "乙", "1940-01-01", status="死亡", status_date="2026-05-10")],
                 "service_orders": [order("O1", B, "W1", "2026-05-11 08:00", 60),
                                    order("O2", C, "W2", "2026-05-10 08:00", 60)]},
         expected=[P(B)]),
    dict(description="orders up to the day of death", rule="service_order_after_death",
         tables={"household_registration": [person(B, "甲", "1940-01-01", status="死亡", status_date="2026-05-10")],
                 "death_records": [dict(id_number=B, name="甲", death_date=dt.date(2026, 5, 12), source="医院")],
                 "service_orders": [order("O1", B, "W1", "2026-05-09 08:00", 60),
                                    order("O2", B, "W2", "2026-05-10 16:00", 60)]},
         expected=[]),
    dict(description="8 h 1 min; exactly 8 h", rule="service_order_too_long",
         tables={"service_orders": [order("O1", B, "W1", "2026-05-11 09:00", 481),
                                    order("O2", C, "W2", "2026-05-11 09:00", 480)]},
         expected=[P(B)]),
    dict(description="exactly 8 h", rule="service_order_too_long",
         tables={"service_orders": [order("O2", C, "W2", "2026-05-11 09:00", 480)]}, expected=[]),
    dict(description="overlap 15 min (flagged), 14 min and back to back (not)", rule="service_order_worker_overlap",
         tables={"service_orders": [order("O1", B, "W1", "2026-05-11 08:00", 60), order("O2", C, "W1", "2026-05-11 08:45", 40),
                                    order("O3", B, "W2", "2026-05-11 08:00", 60), order("O4", C, "W2", "2026-05-11 08:46", 40),
                                    order("O5", B, "W3", "2026-05-11 08:00", 60), order("O6", C, "W3", "2026-05-11 09:00", 40),
                                    order("O7", D, "W3", "2026-05-11 09:40", 40)]},
         expected=[("worker", "W1")]),
    dict(description="back to back and 14 min only", rule="service_order_worker_overlap",
         tables={"service_orders": [order("O3", B, "W2", "2026-05-11 08:00", 60), order("O4", C, "W2", "2026-05-11 08:46", 40),
                                    order("O6", C, "W3", "2026-05-11 09:00", 40), order("O7", D, "W3", "2026-05-11 09:40", 40)]},
         expected=[]),
    dict(description="an order inside a long earlier one overlaps fully", rule="service_order_worker_overlap",
         tables={"service_orders": [order("O1", B, "W1", "2026-05-11 08:00", 300), order("O2", C, "W1", "2026-05-11 09:00", 30),
                                    order("O3", D, "W1", "2026-05-11 10:00", 30)]},
         expected=[("worker", "W1")]),
]

LATEST = [pay(pid("19300101", 99), p) for p in ("2026-09", "2026-10")]  # someone paid: defines the latest period

CASES += [
    dict(description="80+ registered and alive, not paid in the latest period", rule="eligible_not_receiving",
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(pid("19300101", 99), "x", "1930-01-01")],
                 "payments": LATEST + [pay(B, "2026-09")]},
         expected=[P(B)]),
    dict(description="dead by the death record only; moved out; turns 80 after the latest period; paid",
         rule="eligible_not_receiving",
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(pid("19300101", 99), "x", "1930-01-01"),
                                            person(C, "乙", "1940-01-01", status="迁出", status_date="2026-08-01"),
                                            person(pid("19461101", 71), "丙", "1946-11-01"),
                                            person(D, "丁", "1930-02-02")],
                 "death_records": [dict(id_number=B, name="甲", death_date=dt.date(2026, 9, 3), source="火化")],
                 "payments": LATEST + [pay(D, "2026-10", amount=300)]},
         expected=[]),
    # the period judged is per registered county: the latest ended month that county has paid
    dict(description="the county has not paid the last ended month yet: judged on the month before",
         rule="eligible_not_receiving",
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(C, "乙", "1940-01-01"),
                                            person(D, "丁", "1930-02-02", county="340504")],
                 # 340504 has paid October; 340503 only September: B (paid September) is not a lead,
                 # C (not paid September) is
                 "payments": [pay(B, "2026-09"), pay(D, "2026-09", amount=300, county="340504"),
                              pay(D, "2026-10", amount=300, county="340504")]},
         expected=[P(C)]),
    dict(description="a month still being paid is never judged (November paid on the batch date)",
         rule="eligible_not_receiving",
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(pid("19300101", 99), "x", "1930-01-01")],
                 "payments": LATEST + [pay(B, "2026-10"), pay(pid("19300101", 99), "2026-11")]},
         expected=[]),
    dict(description="a batch on the last day of a month judges that month", rule="eligible_not_receiving",
         as_of=dt.date(2026, 10, 31),
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(pid("19300101", 99), "x", "1930-01-01")],
                 "payments": LATEST + [pay(B, "2026-09")]},
         expected=[P(B)]),
    dict(description="the day before the last day of the month judges the month before", rule="eligible_not_receiving",
         as_of=dt.date(2026, 10, 30),
         tables={"household_registration": [person(B, "甲", "1940-01-01"), person(pid("19300101", 99), "x", "1930-01-01")],
                 "payments": LATEST + [pay(B, "2026-09")]},
         expected=[]),
    dict(description="a registered county that has paid no GAOLING judges no period", rule="eligible_not_receiving",
         tables={"household_registration": [person(B, "甲", "1940-01-01", county="340506"),
                                            person(pid("19300101", 99), "x", "1930-01-01")],
                 "payments": LATEST},
         expected=[]),
    dict(description="a 90-year-old paid at the 80s rate", rule="amount_mismatch",
         tables={"household_registration": [person(D, "丁", "1930-02-02")], "payments": [pay(D, "2026-04", amount=100)]},
         expected=[P(D)]),
    dict(description="turns 90 in the period and paid the new tier; under 80 is not this rule's", rule="amount_mismatch",
         tables={"household_registration": [person(pid("19360430", 81), "丁", "1936-04-30"), person(A, "李四", "1946-05-31")],
                 "payments": [pay(pid("19360430", 81), "2026-03", amount=100), pay(pid("19360430", 81), "2026-04", amount=300),
                              pay(A, "2026-04", amount=100)]},
         expected=[]),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c['rule']}: {c['description']}" for c in CASES])
def test_rule_case(case):
    con = make_db(case["tables"])
    assert hits(con, case["rule"], case.get("as_of", AS_OF)) == case["expected"]


def test_every_rule_has_a_positive_and_a_negative_case():
    from rules import load_catalog

    for r in load_catalog():
        mine = [c for c in CASES if c["rule"] == r.id]
        assert any(c["expected"] for c in mine), f"{r.id}: no positive case"
        assert any(not c["expected"] for c in mine), f"{r.id}: no negative case"


def test_hit_row_carries_the_contract_columns_and_chinese_evidence():
    con = make_db({"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-31")],
                   "payments": [pay(B, "2026-03"), pay(B, "2026-04", payment_id="PAY-A"), pay(B, "2026-05", amount=300)]})
    run_rules(con, AS_OF, 7, only=["deceased_paid"])
    row = con.execute("SELECT batch_id, rule_id, rule_version, category, severity, subject_type, subject_id, id_number, "
                      "program_code, first_period, last_period, amount_at_risk, evidence_size, evidence FROM rule_hits").fetchall()
    assert len(row) == 1
    r = row[0]
    assert r[:11] == (7, "deceased_paid", 1, "deceased_paid", "high", "person", B, B, "GAOLING", "2026-04", "2026-05")
    assert float(r[11]) == 400.0 and r[12] == 2
    assert "死亡日期 2026-03-31" in r[13] and "PAY-A" in r[13] and "400.00 元" in r[13]
    types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'rule_hits'").fetchall())
    assert types["amount_at_risk"] == "DECIMAL(18,2)" and types["evidence_size"] == "INTEGER"


def test_duplicate_identity_evidence_names_the_other_id():
    other = pid("19400101", 13, "340522")
    con = make_db({"household_registration": [person(B, "王秀英", "1940-01-01", household="H1"),
                                              person(other, "王秀瑛", "1940-01-01", household="H2")],
                   "payments": [pay(B, "2026-04"), pay(other, "2026-04"), pay(B, "2026-05"), pay(other, "2026-05")]})
    run_rules(con, AS_OF, 1, only=["duplicate_identity"])
    rows = con.execute("SELECT subject_id, evidence, evidence_size FROM rule_hits").fetchall()
    assert len(rows) == 1
    subject, evidence, size = rows[0]
    assert subject == max(B, other) and min(B, other) in evidence and size == 2


def test_optional_extract_not_delivered_is_skipped():
    con = make_db(_dibao_household({}))
    summary = run_rules(con, AS_OF, 1)
    runs = dict(con.execute("SELECT rule_id, status FROM rule_runs").fetchall())
    assert runs["asset_ineligible_vehicle"] == "skipped" and runs["service_order_too_long"] == "skipped"
    assert runs["deceased_paid"] == "ran"
    reason = con.execute("SELECT reason FROM rule_runs WHERE rule_id = 'asset_ineligible_vehicle'").fetchone()[0]
    assert "vehicle_registration" in reason
    assert summary["skipped"] >= 1 and summary["ran"] + summary["skipped"] == summary["rules"]
    assert set(summary) >= {"rules", "ran", "skipped", "hits", "hits_by_category", "seconds"}


def test_rule_hits_are_replaced_each_batch():
    con = make_db({"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-31")],
                   "payments": [pay(B, "2026-04")]})
    run_rules(con, AS_OF, 1)
    run_rules(con, AS_OF, 2)
    assert con.execute("SELECT DISTINCT batch_id FROM rule_hits").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM rule_hits WHERE rule_id = 'deceased_paid'").fetchone()[0] == 1


def test_eligible_not_receiving_owes_the_periods_its_county_has_paid():
    """The amount owed: the eligible periods the person's county has paid, up to the judged one."""
    X, Y = pid("19300101", 99), pid("19300101", 97, "340504")
    con = make_db({"household_registration": [person(C, "乙", "1940-01-01"), person(X, "x", "1930-01-01"),
                                              person(Y, "y", "1930-01-01", county="340504")],
                   "payments": [pay(X, p, amount=300) for p in ("2026-08", "2026-09")]
                   + [pay(Y, p, amount=300, county="340504") for p in ("2026-08", "2026-09", "2026-10")]})
    run_rules(con, AS_OF, 1, only=["eligible_not_receiving"])
    rows = con.execute("SELECT subject_id, first_period, last_period, amount_at_risk, evidence_size, evidence "
                       "FROM rule_hits").fetchall()
    assert len(rows) == 1
    subject, first, last, amount, size, evidence = rows[0]
    assert (subject, first, last, float(amount), size) == (C, "2026-08", "2026-09", 200.0, 2)
    assert "已发放至 2026-09" in evidence and "2026-08、2026-09" in evidence
