"""The rule catalog's loader, compiler and generated artefacts.

- loading fails loudly, naming file and key: unknown key, unknown category, duplicate id, a
  parameter the query uses but does not declare, ...;
- parameters are bound, never pasted; overrides resolve per county/program scope;
- CATALOG.md and the compiled SQL snapshots (rules/compiled/) are up to date with the YAML.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from rules.catalog import RULES_DIR, RuleError, load_catalog, parse_rule
from rules.compile import compile_rule
from rules.docs import CATALOG_MD, COMPILED_DIR, compiled_files, render_catalog
from data_contracts import warehouse
from rules.names import name_readings, similarity
from tests.test_rules_cases import AS_OF, B, C, hits, make_db, pay, person

BASE = yaml.safe_load((RULES_DIR / "deceased_paid.yaml").read_text(encoding="utf-8"))  # a rule of a kind
KIND_KEYS = ("kind", "records", "where", "fields")
# the same rule through the escape hatch: its kind's SELECT under query:
QUERY_BASE = {**{k: v for k, v in BASE.items() if k not in KIND_KEYS},
              "query": parse_rule(RULES_DIR / "deceased_paid.yaml").query}
POLICY_CATEGORIES = {"deceased_paid", "residency_ineligible", "age_ineligible", "duplicate_payment",
                     "duplicate_identity", "identity_unverified", "shared_account", "asset_ineligible", "public_servant",
                     "cadre_relative", "training_claim_abuse", "service_order_anomaly", "eligible_not_receiving",
                     "amount_mismatch"}


def write(tmp_path: Path, doc: dict, name: str = "deceased_paid") -> Path:
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return f


def edit(base: dict = BASE, **changes) -> dict:
    doc = {**base, **changes}
    return {k: v for k, v in doc.items() if v is not None}


LOADER_ERRORS = [
    dict(description="unknown top-level key", doc=edit(severty="high"), key="severty", problem="unknown key"),
    dict(description="unknown category", doc=edit(category="dead_paid"), key="category", problem="unknown category"),
    dict(description="model_outlier is the scorer's", doc=edit(category="model_outlier"), key="category",
         problem="scorer"),
    dict(description="unknown severity", doc=edit(severity="urgent"), key="severity", problem="unknown severity"),
    dict(description="missing key", doc=edit(evidence=None), key="evidence", problem="missing key"),
    dict(description="parameter used but not declared", doc=edit(params={}), key="params.grace_months",
         problem="not declared"),
    dict(description="parameter declared but unused", doc=edit(params={"grace_months": 0, "spare": 1}),
         key="params.spare", problem="never uses"),
    dict(description="unknown program", doc=edit(programs=["GAOLING", "LAOYOU"]), key="programs[1]",
         problem="unknown program"),
    dict(description="unknown extract", doc=edit(requires=["payments", "tax_records"]), key="requires[1]",
         problem="unknown extract"),
    dict(description="override of an undeclared parameter",
         doc=edit(overrides=[{"county": "340503", "params": {"grace": 1}}]), key="overrides[0].params.grace",
         problem="not a declared parameter"),
    dict(description="unknown override key",
         doc=edit(overrides=[{"county": "340503", "params": {"grace_months": 1}, "note": "x"}]),
         key="overrides[0].note", problem="unknown key"),
    dict(description="county code not 6 digits",
         doc=edit(overrides=[{"county": "3405", "params": {"grace_months": 1}}]), key="overrides[0].county",
         problem="6-digit"),
    dict(description="unknown title language", doc=edit(title={"zh": "x", "en": "y", "fr": "z"}), key="title.fr",
         problem="unknown key"),
    dict(description="id differs from file name", doc=edit(id="deceased"), key="id", problem="file name"),
    dict(description="two statements", doc=edit(QUERY_BASE, query=QUERY_BASE["query"] + "; DROP TABLE x"), key="query",
         problem="one SELECT"),
    dict(description="a kind and a query", doc=edit(query=QUERY_BASE["query"]), key="query", problem="not both"),
    dict(description="neither a kind nor a query", doc=edit(kind=None), key="records", problem="unknown key"),
    dict(description="unknown kind", doc=edit(kind="threshold"), key="kind", problem="unknown kind"),
    dict(description="a key of another kind", doc=edit(block_on=["sex"]), key="block_on", problem="for kind condition"),
    dict(description="unknown records", doc=edit(records="pensions"), key="records", problem="one of payments"),
    dict(description="two expressions in a where", doc=edit(where="true; DROP TABLE x"), key="where",
         problem="one SQL expression"),
    dict(description="a list with an unknown separator", doc=edit(lists={"ids": {"each": "{payment_id}", "sep": "|"}}),
         key="lists.ids.sep", problem="one of"),
    dict(description="evidence field not an identifier", doc=edit(evidence="死亡 {death date}"), key="evidence",
         problem="not a column name"),
    dict(description="evidence field the rule does not make", doc=edit(evidence="死亡 {death_sauce}"), key="evidence",
         problem="{death_sauce} is none of the hit columns"),
    dict(description="a register's list with no order", doc=edit(
        kind="condition", records="payments", where="true",
        register={"of": "vehicles", "lists": {"cars": "{plate_number}"}}), key="register.lists.cars",
         problem="says its order"),
    dict(description="an unknown incremental grain", doc=edit(incremental="village"), key="incremental",
         problem="the incremental grains are person, household, account"),
    dict(description="an incremental grain that is not the rule's subject", doc=edit(incremental="household"),
         key="incremental", problem="household, but the rule's subjects are person"),
    dict(description="incremental: person on a rule that reads the batch date",
         doc=edit(incremental="person", where="p.period < strftime($as_of, '%Y-%m') + $grace_months"), key="incremental",
         problem="reads $as_of"),
    dict(description="incremental: person on a rule that reads a household view",
         doc=edit(incremental="person", join="v_household_vehicle hv ON hv.member_id = p.id_number"),
         key="incremental", problem="reads v_household_vehicle"),
]


@pytest.mark.parametrize("case", LOADER_ERRORS, ids=[c["description"] for c in LOADER_ERRORS])
def test_loader_refuses(tmp_path, case):
    f = write(tmp_path, case["doc"])
    with pytest.raises(RuleError) as e:
        load_catalog(tmp_path)
    assert e.value.key == case["key"] and case["problem"] in e.value.problem
    assert str(e.value).startswith("deceased_paid.yaml: ")
    assert e.value.file == str(f)


def test_loader_refuses_a_duplicate_id(tmp_path):
    write(tmp_path, BASE)
    shutil.copy(tmp_path / "deceased_paid.yaml", tmp_path / "deceased_paid.yml")
    with pytest.raises(RuleError, match="duplicate id"):
        load_catalog(tmp_path)


def test_loader_refuses_bad_yaml(tmp_path):
    (tmp_path / "deceased_paid.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(RuleError, match="deceased_paid.yaml: line"):
        load_catalog(tmp_path)


def test_catalog_covers_every_policy_category_but_model_outlier():
    rules = load_catalog()
    assert {r.category for r in rules} == POLICY_CATEGORIES
    assert all(r.file.stem == r.id for r in rules)


def test_parameters_are_bound_not_pasted():
    for r in load_catalog():
        sql = compile_rule(r).sql
        for name, value in r.params.items():
            assert f"${name}" in sql
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, str):
                    assert f"'{v}'" not in sql, f"{r.id}: the value of {name} is pasted into the SQL"
        literal_text = [t for t in re.split(r"\{\w+\}", r.evidence) if len(t.strip()) >= 2]
        assert literal_text, f"{r.id}: an evidence template with no words"
        for t in literal_text:
            assert t not in sql, f"{r.id}: evidence text {t!r} pasted into the SQL"


def test_overrides_per_county_and_per_program(tmp_path):
    doc = edit(overrides=[{"county": "340504", "params": {"grace_months": 2}},
                          {"program": "CANJI_HULI", "params": {"grace_months": 1}}])
    write(tmp_path, doc)
    c = compile_rule(parse_rule(tmp_path / "deceased_paid.yaml"))
    assert [s.key for s in c.scopes] == ["*|*", "340504|*", "*|CANJI_HULI"]
    pays = [pay(B, p, program=prog) for p in ("2026-04", "2026-05", "2026-06") for prog in ("GAOLING", "CANJI_HULI")]
    pays += [pay(C, p, county="340504") for p in ("2026-04", "2026-05", "2026-06")]
    con = make_db({"household_registration": [
        person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-20"),
        person(C, "李四", "1940-01-01", sex="女", household="H2", county="340504", status="死亡", status_date="2026-03-02")],
        "payments": pays})
    from rules import run_rules

    run_rules(con, AS_OF, 1, rules_dir=tmp_path)
    got = con.execute("SELECT county_code, program_code, first_period, evidence_size FROM rule_hits "
                      "ORDER BY county_code, program_code").fetchall()
    # default: April on; county 340504: two months' grace -> June; CANJI_HULI: one month -> May
    assert got == [("340503", "CANJI_HULI", "2026-05", 2), ("340503", "GAOLING", "2026-04", 3),
                   ("340504", "GAOLING", "2026-06", 1)]


def test_catalog_md_is_up_to_date():
    assert CATALOG_MD.read_text(encoding="utf-8") == render_catalog(load_catalog()), \
        "rules/CATALOG.md is stale: run `python -m rules generate`"


def test_compiled_sql_snapshots_are_up_to_date():
    """A reviewer sees every change of a rule's SQL as a diff of rules/compiled/<id>.sql."""
    want = compiled_files(load_catalog())
    have = {f.name: f.read_text(encoding="utf-8") for f in COMPILED_DIR.glob("*.sql")}
    assert have == want, "rules/compiled/ is stale: run `python -m rules generate`"


def test_sql_dir_one_statement_per_file_named_after_its_object():
    order = [n for n, _ in warehouse.read_folder("shared")]
    assert order.index("age_years") < order.index("v_payment") and order.index("v_person") < order.index("v_payment")
    for name, stmt in warehouse.read_folder("shared"):
        assert re.search(rf"CREATE OR REPLACE (VIEW|TABLE|MACRO) {name}\b", stmt)


@pytest.mark.parametrize("a,b,at_least,below", [
    ("王秀英", "王秀瑛", 100, None), ("张伟", "张玮", 100, None), ("阿依古丽·吐尔逊", "阿依古丽•吐尔逊", 100, None),
    ("王秀英", "钱英富", None, 60), ("李建国", "王秀英", None, 60), ("张建华", "张建成", 60, 85),
])
def test_name_similarity_hears_homophones(a, b, at_least, below):
    r = name_readings(pl.Series([a, b]))
    sound = dict(zip(r["name"], r["sound"]))
    s = similarity([sound[a]], [sound[b]])[0] if a != b and sound[a] != sound[b] else 100.0
    if at_least is not None:
        assert s >= at_least
    if below is not None:
        assert s < below


def test_name_readings_are_those_of_pypinyin_with_its_phrase_dictionary():
    """rules/pinyin.py imports pypinyin without its phrase dictionary; asked one character at a time
    (rules/names.py) it must read every character of the CJK blocks as pypinyin with it does. Each side
    in a process of its own (a test of the audit's labels loads the dictionary into this one)."""
    import os
    import subprocess
    import sys

    chars = [chr(c) for r in ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0x20000, 0x2A6DF)) for c in range(r[0], r[1] + 1)]
    ours = ("import os, sys, polars as pl\n"
            "from rules.names import name_readings\n"
            "import pypinyin.constants\n"
            "assert not pypinyin.constants.PHRASES_DICT, 'imported with its phrase dictionary'\n"
            "assert 'PYPINYIN_NO_PHRASES' not in os.environ, 'the switch was left set'\n"
            "r = name_readings(pl.Series(sys.stdin.read().split('\\n')))\n"
            "print('\\n'.join(f'{n}\\t{x}' for n, x in r.select('name', 'reading').iter_rows()))\n")
    full = ("import sys, pypinyin.constants\n"
            "from pypinyin import Style, lazy_pinyin\n"
            "assert len(pypinyin.constants.PHRASES_DICT) > 10000\n"
            "chars = sys.stdin.read().split('\\n')\n"
            "print('\\n'.join(f'{c}\\t{r.lower()}' for c, r in zip(chars, lazy_pinyin(chars, style=Style.NORMAL, errors=lambda x: list(x)))))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYPINYIN_NO_PHRASES"}
    got, expected = ({line.split("\t")[0]: line.split("\t")[1] for line in
                      subprocess.run([sys.executable, "-c", script], input="\n".join(chars), capture_output=True,
                                     text=True, check=True, env=env).stdout.splitlines()}
                     for script in (ours, full))
    assert len(got) == len(chars) == len(expected)
    differ = [(c, got[c], expected[c]) for c in chars if got[c] != expected[c]]
    assert not differ, differ[:10]


def test_name_readings_are_kept_while_the_names_are_the_same(tmp_path, monkeypatch):
    """``build_name_readings`` rebuilds ``name_reading`` only when the names it reads changed (or with
    SENTINEL_FULL_RECOMPUTE): a kept table is the one a rebuild would give."""
    import duckdb

    from rules.names import build_name_readings

    monkeypatch.delenv("SENTINEL_FULL_RECOMPUTE", raising=False)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE stg_household_registration (name VARCHAR)")
    con.execute("CREATE TABLE stg_payments (name VARCHAR)")
    con.execute("INSERT INTO stg_household_registration VALUES ('王秀英'), ('李小明'), (NULL)")
    con.execute("INSERT INTO stg_payments VALUES ('王秀英'), ('阿依古丽·买买提')")

    def readings():
        return sorted(con.execute("SELECT name, folded, reading FROM name_reading").fetchall())

    def built_at():  # DuckDB gives a table a new oid when it is created again
        return con.execute("SELECT table_oid FROM duckdb_tables() WHERE table_name = 'name_reading'").fetchall()[0][0]

    assert build_name_readings(con) == 3
    first, oid = readings(), built_at()
    assert build_name_readings(con) == 3 and built_at() == oid  # the same names: kept
    con.execute("UPDATE stg_payments SET name = '王秀瑛' WHERE name = '王秀英'")  # a name changed: rebuilt
    assert build_name_readings(con) == 4 and built_at() != oid
    assert ("王秀瑛", "王秀瑛", "wang xiu ying") in readings()
    con.execute("UPDATE stg_payments SET name = '王秀英' WHERE name = '王秀瑛'")  # back as it was
    build_name_readings(con)
    assert readings() == first
    oid = built_at()
    monkeypatch.setenv("SENTINEL_FULL_RECOMPUTE", "1")
    build_name_readings(con)
    assert built_at() != oid and readings() == first
    con.close()


def test_sentinel_rules_lists_the_catalog(capsys):
    from flows.cli import main

    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    for r in load_catalog():
        assert r.id in out


def test_a_failing_rule_names_its_file_and_masks_ids(tmp_path):
    doc = edit(QUERY_BASE, query=QUERY_BASE["query"].replace("FROM v_payment p", "FROM v_payment_missing p"))
    write(tmp_path, doc)
    con = make_db({"household_registration": [person(B, "张三", "1940-01-01")], "payments": [pay(B, "2026-04")]})
    from rules import run_rules
    from rules.execute import RuleRunError

    with pytest.raises(RuleRunError, match="deceased_paid.yaml") as e:
        run_rules(con, AS_OF, 1, rules_dir=tmp_path)
    assert B not in str(e.value)


def test_mask_of_database_messages():
    from data_contracts.ids import mask_ids_in_text as _mask

    assert _mask(f"Could not convert '{B}'") == f"Could not convert '{B[:6]}{'*' * 8}{B[-4:]}'"


def test_one_rule_only():
    con = make_db({"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-31")],
                   "payments": [pay(B, "2026-04")]})
    assert hits(con, "deceased_paid") == [("person", B)]
    assert con.execute("SELECT count(*) FROM rule_runs").fetchone()[0] == 1
    with pytest.raises(ValueError, match="unknown rule"):
        from rules import run_rules

        run_rules(con, AS_OF, 1, only=["nope"])


def test_program_names_in_evidence_are_the_policy_modules():
    import duckdb

    from data_contracts.policy import PROGRAMS
    con = duckdb.connect()
    warehouse.register_policy(con)
    con.execute(warehouse.load("shared", "program_name")).fetchall()
    got = dict(con.execute("SELECT c, program_name(c) FROM unnest($codes) t(c)",
                           {"codes": [*PROGRAMS, "NEW_CODE"]}).fetchall())
    assert got == {**PROGRAMS, "NEW_CODE": "NEW_CODE"}


def test_the_escape_hatch_gives_the_same_hits_as_the_kind(tmp_path):
    """A kind writes the SELECT a hand-written query would: the same rule both ways, the same hits."""
    con = make_db({"household_registration": [person(B, "张三", "1940-01-01", status="死亡", status_date="2026-03-20")],
                   "payments": [pay(B, p) for p in ("2026-03", "2026-04", "2026-05")]})
    from rules import run_rules

    run_rules(con, AS_OF, 1, only=["deceased_paid"])
    kind = con.execute("SELECT * FROM rule_hits").fetchall()
    write(tmp_path, QUERY_BASE)
    run_rules(con, AS_OF, 1, rules_dir=tmp_path)
    assert con.execute("SELECT * FROM rule_hits").fetchall() == kind and len(kind) == 1


def test_hit_columns_come_from_the_warehouse_contract():
    from rules.grammar import hit_columns

    names = [c for c, _ in warehouse.columns("rule_hits")]
    assert [c for c, _ in hit_columns()] == names[names.index("subject_type"):names.index("evidence")] + ["evidence_size"]
    for r in load_catalog():
        assert "CREATE" not in compile_rule(r).sql.upper()


@pytest.mark.parametrize("a,b,level", [
    ("叶大海", "叶大瀚", "读音相近"), ("王秀英", "王秀瑛", "读音相同"), ("王建国", "王建华", "仅一字之差"),
    ("王伟", "李伟", None), ("李建国", "王秀英", None), ("张伟", "张伟华", None),
])
def test_duplicate_identity_levels(a, b, level):
    """Splink-like comparison levels, the first that holds wins: the same reading; Jaro-Winkler over
    the whole reading; one character apart in a written name of three characters or more."""
    from rules.kinds import level_sql

    rule = parse_rule(RULES_DIR / "duplicate_identity.yaml")
    doc = yaml.safe_load((RULES_DIR / "duplicate_identity.yaml").read_text(encoding="utf-8"))
    r = name_readings(pl.Series([a, b]))
    con = duckdb.connect()
    con.register("nr", r)
    threshold = str(rule.params["min_reading_similarity"])
    whens = " ".join(f"WHEN {level_sql('x', 'l', lv, {}).replace('$min_reading_similarity', threshold)} "
                     f"THEN '{lv['label']}'" for lv in doc["levels"])
    got = con.execute(f"SELECT CASE {whens} END FROM nr l, nr r WHERE l.name = ? AND r.name = ?", [a, b]).fetchone()[0]
    assert got == level


def _doc(rule_id: str) -> dict:
    return yaml.safe_load((RULES_DIR / f"{rule_id}.yaml").read_text(encoding="utf-8"))


VEHICLE, ELIGIBLE = _doc("asset_ineligible_vehicle"), _doc("eligible_not_receiving")
KIND_ERRORS = [
    dict(description="register of an unknown register", doc=edit(VEHICLE, register={**VEHICLE["register"], "of": "boats"}),
         key="register.of", problem="one of vehicles"),
    dict(description="register during without per record", doc=edit(VEHICLE, register={**VEHICLE["register"], "during": True}),
         key="register.during", problem="per: record"),
    dict(description="register with an unknown key", doc=edit(VEHICLE, register={**VEHICLE["register"], "on": "x"}),
         key="register", problem="expected a mapping"),
    dict(description="register and derive", doc=edit(VEHICLE, derive={"x": "1"}), key="register", problem="not both"),
    dict(description="optional part without a field", doc=edit(VEHICLE, evidence="[车辆|无] {vehicles}"), key="evidence",
         problem="names no field"),
    dict(description="nested optional part", doc=edit(VEHICLE, evidence="[[{vehicles}]]"), key="evidence",
         problem="optional part"),
    dict(description="list with an optional part without a field",
         doc=edit(VEHICLE, register={**VEHICLE["register"], "lists": {"vehicles": "[车|无]"}}),
         key="register.lists.vehicles.each", problem="names no field"),
    dict(description="absence without expected", doc=edit(ELIGIBLE, expected=None), key="expected",
         problem="one SQL expression"),
    dict(description="absence of claims", doc=edit(ELIGIBLE, records="training_claims"), key="records",
         problem="of payments"),
]


@pytest.mark.parametrize("case", KIND_ERRORS, ids=[c["description"] for c in KIND_ERRORS])
def test_kind_options_are_checked(tmp_path, case):
    write(tmp_path, case["doc"], case["doc"]["id"])
    with pytest.raises(RuleError) as e:
        load_catalog(tmp_path)
    assert e.value.key == case["key"] and case["problem"] in e.value.problem, str(e.value)


def test_no_rule_of_a_kind_builds_evidence_with_concatenation():
    """Evidence only via templates: no || in a kind's YAML (lists and optional parts are templates)."""
    for r in load_catalog():
        if r.kind != "query":
            assert "||" not in r.file.read_text(encoding="utf-8"), r.id
