"""Every rule's test cases, on a real DuckDB: the one test that runs ``rules/<id>.cases.yaml``.

A rule's cases sit beside it (SQLMesh's YAML unit tests): per case, the input rows per extract and
the hit rows expected (subject, program, periods, amount, number of records; optionally
``evidence_contains``, a piece of the evidence text). A row lists only the
columns that matter; the others take :data:`DEFAULTS`. The rows go into the stg_* tables the
ingest makes (ID columns normalised and validated by data_contracts.ids, so a 15-digit number is
upgraded as in a real batch); the case runs its rule alone and compares every expected column.
Every rule has a positive and a negative case. Python tests follow for what a fixture cannot say.
"""
from __future__ import annotations

import datetime as dt
import re
import shutil

import duckdb
import polars as pl
import pytest
import yaml

from data_contracts.extracts import EXTRACTS
from data_contracts.ids import id_valid, normalise_id
from data_contracts.load import ensure_tables
from rules import RuleError, load_catalog, run_rules
from rules.catalog import CASES_SUFFIX, RULES_DIR

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


DEFAULTS = {  # the columns a fixture row does not list
    "household_registration": dict(sex="男", household_id="H1", relation_to_head="户主", county_code="340503",
                                   township="解放路街道", village="东湖社区", status="正常"),
    "payments": dict(program_code="GAOLING", amount=100, name="张三", county_code="340503", township="解放路街道",
                     village="东湖社区"),  # payment_id, bank_account: one of their own; pay_date: the period's 15th
    "training_claims": dict(name="甲", county_code="340503", amount=1000),
    "service_orders": dict(provider="颐康", service_type="助洁", county_code="340503", amount=60),
    "public_servants": dict(name="乙", employer="区民政局", county_code="340503"),
    "property_registration": dict(owner_name="x", area_m2=80, county_code="340503",
                                  registration_date=dt.date(2019, 1, 1), status="现势"),
    "vehicle_registration": dict(owner_name="甲", registration_date=dt.date(2020, 1, 1), assessed_value=50000),
}
HIT = ("subject_type", "subject_id", "program_code", "first_period", "last_period", "amount_at_risk", "evidence_size",
       "county_code", "township", "village")


def with_defaults(table: str, rows: list[dict]) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        row = {**DEFAULTS.get(table, {}), **r}
        if table == "payments":
            row.setdefault("payment_id", f"P{i:06d}")
            row.setdefault("bank_account", f"6217{i:08d}")
            row.setdefault("pay_date", dt.date.fromisoformat(row["period"] + "-15"))
        out.append(row)
    return out


def fixture_cases() -> list[dict]:
    cases = []
    for f in sorted(RULES_DIR.glob(f"*{CASES_SUFFIX}")):
        for c in yaml.safe_load(f.read_text(encoding="utf-8")):
            cases.append({**c, "rule": f.name.removesuffix(CASES_SUFFIX)})
    return cases


CASES = fixture_cases()


def check_case(case: dict, rules_dir=None) -> None:
    con = make_db({t: with_defaults(t, rows) for t, rows in case["given"].items()})
    run_rules(con, case.get("as_of", AS_OF), 1, rules_dir=rules_dir, only=[case["rule"]])
    got = pl.from_arrow(con.sql(f"SELECT {', '.join(HIT)}, evidence FROM rule_hits ORDER BY subject_id").to_arrow_table())
    want = [{"subject_type": "person", **e} for e in case["expect"]]
    assert got.height == len(want), got.to_dicts()
    for g, w in zip(got.to_dicts(), want):
        assert w.pop("evidence_contains", "") in g["evidence"]
        assert {k: g[k] for k in w} == {k: (v if k != "amount_at_risk" else type(g[k])(str(v))) for k, v in w.items()}


@pytest.mark.parametrize("case", CASES, ids=[f"{c['rule']}: {c['case']}" for c in CASES])
def test_rule_case(case):
    check_case(case)


def test_the_worked_example_in_developers_md(tmp_path):
    """DEVELOPERS.md's "Adding a rule" example, as written there, loads beside the catalog and passes its cases."""
    doc = (RULES_DIR.parent / "DEVELOPERS.md").read_text(encoding="utf-8")
    blocks = dict(re.findall(r"<!-- example: (\S+) -->\n```yaml\n(.*?)```", doc, re.S))
    assert set(blocks) == {"gaoling_paid_elsewhere.yaml", "gaoling_paid_elsewhere.cases.yaml"}
    assert sum(b.count("\n") for b in blocks.values()) < 30  # a rule and its cases in under 30 lines
    for f in RULES_DIR.glob("*.yaml"):
        shutil.copy(f, tmp_path)
    for name, text in blocks.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert "gaoling_paid_elsewhere" in {r.id for r in load_catalog(tmp_path)}
    cases = yaml.safe_load(blocks["gaoling_paid_elsewhere.cases.yaml"])
    assert any(c["expect"] for c in cases) and any(not c["expect"] for c in cases)
    for case in cases:
        check_case({**case, "rule": "gaoling_paid_elsewhere"}, rules_dir=tmp_path)


def test_every_rule_has_a_positive_and_a_negative_case():
    for r in load_catalog():
        mine = [c for c in CASES if c["rule"] == r.id]
        assert any(c["expect"] for c in mine), f"{r.id}: no positive case"
        assert any(not c["expect"] for c in mine), f"{r.id}: no negative case"
    assert {c["rule"] for c in CASES} <= {r.id for r in load_catalog()}, "cases of a rule that does not exist"


def make_db(tables: dict[str, list[dict]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    ensure_tables(con)
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



def _dibao_household(extra_tables: dict) -> dict:
    t = {"household_registration": [person(E, "甲", "1986-01-01", household="H9"),
                                    person(pid("19880202", 22), "乙", "1988-02-02", sex="女", household="H9",
                                           relation="配偶")],
         "payments": [pay(E, "2026-04", "DIBAO", 1480, household="H9"), pay(E, "2026-05", "DIBAO", 1480, household="H9")]}
    for k, v in extra_tables.items():
        t[k] = t.get(k, []) + v
    return t


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


def test_a_pair_rule_blocked_on_other_columns_runs(tmp_path):
    """The pair kind is not duplicate_identity's alone: the same rule blocked without the county pairs
    the same name across counties (the decoy duplicate_identity leaves alone), and its evidence still
    names the other number and the block's columns."""
    doc = yaml.safe_load((RULES_DIR / "duplicate_identity.yaml").read_text(encoding="utf-8"))
    doc.update(id="same_person_two_counties", block_on=["sex", "birth_date", "program_code", "period"])
    (tmp_path / "same_person_two_counties.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert {r.id for r in load_catalog(tmp_path)} == {"same_person_two_counties"}
    check_case({"rule": "same_person_two_counties", "given": {
        "household_registration": [
            {"id_number": "340503194001010132", "name": "王秀英", "birth_date": dt.date(1940, 1, 1)},
            {"id_number": "340522194001010131", "name": "王秀英", "birth_date": dt.date(1940, 1, 1),
             "household_id": "H3", "county_code": "340504"}],
        "payments": [{"id_number": "340503194001010132", "period": "2026-04"},
                     {"id_number": "340522194001010131", "period": "2026-04", "county_code": "340504"}]},
        "expect": [{"subject_id": "340522194001010131", "program_code": "GAOLING", "first_period": "2026-04",
                    "amount_at_risk": 100, "evidence_size": 1,
                    "evidence_contains": "与身份证号 340503194001010132（王秀英"}]}, rules_dir=tmp_path)


def test_a_pair_block_outside_one_program_and_period_is_refused(tmp_path):
    doc = yaml.safe_load((RULES_DIR / "duplicate_identity.yaml").read_text(encoding="utf-8"))
    doc["block_on"] = ["county_code", "sex", "birth_date"]
    (tmp_path / "duplicate_identity.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleError, match=r"duplicate_identity.yaml: block_on: .*add program_code, period"):
        load_catalog(tmp_path)


def test_an_absence_rule_naming_a_field_it_does_not_make_is_refused(tmp_path):
    doc = yaml.safe_load((RULES_DIR / "eligible_not_receiving.yaml").read_text(encoding="utf-8"))
    doc["evidence"] += "；{last_payment}"
    (tmp_path / "eligible_not_receiving.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RuleError, match=r"eligible_not_receiving.yaml: evidence: \{last_payment\} is none of"):
        load_catalog(tmp_path)
