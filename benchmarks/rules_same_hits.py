"""Do two versions of the rule catalog raise the same hits on one generated city?

    python benchmarks/rules_same_hits.py city  --persons 20000 --seed 3 --work DIR   # landing + staged warehouse
    python benchmarks/rules_same_hits.py dump  --work DIR --out hits.parquet          # run the rules of this tree
    python benchmarks/rules_same_hits.py diff  before.parquet after.parquet [--except duplicate_identity]
    python benchmarks/rules_same_hits.py loosen --rules rules/ --out DIR    # a copy with looser parameters
    python benchmarks/rules_same_hits.py dump  --work DIR --out hits.parquet --rules DIR

``dump`` copies the staged warehouse, runs the whole catalog of the code on ``sys.path`` (run it
with ``PYTHONPATH`` set to another checkout to dump that version's hits) and writes ``rule_hits``
(every column, evidence text included) to Parquet. ``diff`` prints, per rule, the rows only one
side has (subject ids are never printed: counts, and the columns that differ) and exits 1 if any
rule outside ``--except`` differs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
from pathlib import Path

import duckdb
import polars as pl

AS_OF = dt.date(2026, 11, 1)
KEY = ["rule_id", "subject_type", "subject_id", "program_code", "finding_key"]


def cmd_city(a) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from data_contracts.ingest import ingest
    from synthetic.city import generate

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    generate(persons=a.persons, seed=a.seed, out=work / "landing")
    res = ingest(work / "landing", work / "staged.duckdb", AS_OF)
    (work / "batch_id").write_text(str(res.batch_id))
    return 0


def cmd_dump(a) -> int:
    from rules import run_rules

    work = Path(a.work)
    wh = work / f"run-{Path(a.out).stem}.duckdb"
    shutil.copy(work / "staged.duckdb", wh)
    con = duckdb.connect(str(wh))
    summary = run_rules(con, AS_OF, int((work / "batch_id").read_text()), rules_dir=a.rules)
    pl.from_arrow(con.sql("SELECT * EXCLUDE (batch_id) FROM rule_hits").to_arrow_table()).write_parquet(a.out)
    con.close()
    wh.unlink()
    print(f"{summary['hits']} hits of {summary['ran']} rules in {summary['seconds']} s -> {a.out}")
    return 0


ALL_PAYMENTS = ["DIBAO", "TEKUN", "GAOLING", "CANJI_SHENGHUO", "CANJI_HULI", "GUER"]
ALL_ROLES = ["公务员", "事业单位", "国有企业", "村两委", "社区两委"]
LOOSER = {  # rule -> keys replaced (programs, params)
    "asset_ineligible_vehicle": {"programs": ALL_PAYMENTS, "params": {"exempt_vehicle_types": ["（无）"]}},
    "asset_ineligible_property": {"programs": ALL_PAYMENTS, "params": {"allowed_usages": ["住宅"], "max_homes": 0}},
    "public_servant_household": {"programs": ALL_PAYMENTS, "params": {"roles": ALL_ROLES}},
    "cadre_relative_committee": {"programs": ALL_PAYMENTS, "params": {"roles": ALL_ROLES}},
    "public_servant_peixun": {"params": {"roles": ALL_ROLES}},
    "eligible_not_receiving": {"params": {"min_age": 60, "tier_min_ages": [60, 80, 90, 100],
                                          "tier_amounts": [50, 100, 300, 600]}},
    "shared_account": {"params": {"min_persons": 1, "min_households": 1}},
    "duplicate_payment": {"params": {"max_per_period": 0}},
    "training_certificate_reused": {"params": {"max_claims_per_certificate": 0}},
    "service_order_worker_overlap": {"params": {"min_overlap_minutes": -600}},
}


def cmd_loosen(a) -> int:
    import yaml

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(a.rules).glob("*.yaml")):
        if f.name.endswith(".cases.yaml"):
            continue
        doc = yaml.safe_load(f.read_text(encoding="utf-8"))
        for key, value in LOOSER.get(doc["id"], {}).items():
            doc[key] = {**doc[key], **value} if isinstance(value, dict) else value
        (out / f.name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return 0


def diff(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """Per rule: rows before, rows after, rows only before, rows only after (all columns compared)."""
    cols = sorted(set(before.columns) & set(after.columns))
    b, a = before.select(cols), after.select(cols)
    only_b = b.join(a, on=cols, how="anti", nulls_equal=True)
    only_a = a.join(b, on=cols, how="anti", nulls_equal=True)
    rules = pl.concat([b.select("rule_id"), a.select("rule_id")]).unique()
    count = lambda df, name: df.group_by("rule_id").len(name=name)  # noqa: E731
    return (rules.join(count(b, "before"), on="rule_id", how="left").join(count(a, "after"), on="rule_id", how="left")
            .join(count(only_b, "only_before"), on="rule_id", how="left")
            .join(count(only_a, "only_after"), on="rule_id", how="left").fill_null(0).sort("rule_id"))


def differing_columns(before: pl.DataFrame, after: pl.DataFrame, rule: str) -> list[str]:
    b, a = before.filter(pl.col("rule_id") == rule), after.filter(pl.col("rule_id") == rule)
    j = b.join(a, on=KEY, how="inner", suffix="_after", nulls_equal=True)
    return [c for c in b.columns if c not in KEY and not j.filter(~pl.col(c).eq_missing(pl.col(f"{c}_after"))).is_empty()]


def cmd_diff(a) -> int:
    before, after = pl.read_parquet(a.before), pl.read_parquet(a.after)
    table = diff(before, after)
    with pl.Config(tbl_rows=100, tbl_width_chars=200):
        print(table)
    bad = table.filter(((pl.col("only_before") > 0) | (pl.col("only_after") > 0))
                       & ~pl.col("rule_id").is_in(a.exempt))
    for rule in table.filter((pl.col("only_before") > 0) | (pl.col("only_after") > 0))["rule_id"]:
        print(f"{rule}: columns that differ on the same finding: {differing_columns(before, after, rule)}")
    print("SAME" if bad.is_empty() else f"DIFFERENT: {bad['rule_id'].to_list()}")
    return 0 if bad.is_empty() else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("city")
    c.add_argument("--persons", type=int, default=20_000)
    c.add_argument("--seed", type=int, default=3)
    c.add_argument("--work", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--work", required=True)
    d.add_argument("--out", required=True)
    d.add_argument("--rules", default=None, help="a folder of rule files (default: this tree's rules/)")
    lo = sub.add_parser("loosen")
    lo.add_argument("--rules", required=True)
    lo.add_argument("--out", required=True)
    f = sub.add_parser("diff")
    f.add_argument("before")
    f.add_argument("after")
    f.add_argument("--except", dest="exempt", nargs="*", default=[])
    a = ap.parse_args(argv)
    return {"city": cmd_city, "dump": cmd_dump, "diff": cmd_diff, "loosen": cmd_loosen}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
