"""Oversight (issue 16): the outcome audit (a planted biased rule is flagged, the real rules on a
uniformly planted city are not), `sentinel explain` on a warning of each category, a warning
recomputed from what it recorded, the model card, the summary's section."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from flows.cli import main
from casework.lifecycle import update_warnings
from models import card, scorer
from oversight import audit, report
from oversight.explain import explain
from oversight.recompute import recompute
from rules import run_rules
from synthetic.city import answer_key_path
from tests.conftest import AS_OF

ID_IN_TEXT = re.compile(r"(?<![0-9A-Z])\d{17}[\dX](?![0-9X])")  # a full ID number standing alone

BIASED = Path(__file__).resolve().parent / "biased_rules"


def _copy(demo_run, tmp_path: Path) -> Path:
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(demo_run["warehouse"], wh)
    return wh


def test_audit_of_the_real_rules_on_a_uniform_city_flags_nothing(demo_run, tmp_path, monkeypatch, capsys):
    wh = demo_run["warehouse"]
    a = audit.audit_warehouse(wh)
    assert a.as_of == AS_OF
    assert a.flags.height == 0, a.flags.select("key", "view", "group", "reason").to_dicts()
    # the rates are real counts: per rule, the warned persons over the county groups add up to the
    # persons its warnings name in the paid population
    with duckdb.connect(str(wh), read_only=True) as con:
        n = con.execute("""SELECT count(DISTINCT w.id_number) FROM warnings w
            WHERE w.rule_id = 'deceased_paid@v1' AND w.id_number IN (
                SELECT id_number FROM stg_payments WHERE period BETWEEN '2025-11' AND '2026-10')""").fetchall()[0][0]
    county = a.views["county"].filter((pl.col("level") == "rule") & (pl.col("key") == "deceased_paid"))
    assert n > 0 and county["warned"].sum() == n
    assert set(a.views) == {"county", "township", "program", "sex", "age_band"}
    assert set(a.views["sex"]["group"]) >= {"男", "女"}
    # the CLI writes a CSV per view, charts and the report
    out = tmp_path / "audit"
    assert main(["audit", "--warehouse", str(wh), "--out", str(out)]) == 0
    for view in a.views:
        assert pl.read_csv(out / f"audit_{view}.csv").height == a.views[view].height
    assert len(list(out.glob("*.png"))) >= 4
    md = (out / "audit.md").read_text(encoding="utf-8")
    assert "No group flagged." in md and "two-sided exact" in md
    assert not re.search(r"(?<![0-9.])\d{17}[\dX](?![0-9X])",
                         md + "".join(p.read_text(encoding="utf-8") for p in out.glob("*.csv")))
    # again into its own folder: replaced; into a folder holding anything else (a batch's outputs, a
    # stranger's file, one of its files changed by hand): refused, nothing touched
    stale = out / "audit_old_view.csv"
    stale.write_text("x\n", encoding="utf-8")
    assert main(["audit", "--warehouse", str(wh), "--out", str(out)]) == 2 and stale.read_text() == "x\n"
    stale.unlink()
    assert main(["audit", "--warehouse", str(wh), "--out", str(out)]) == 0 and (out / "audit.md").is_file()
    # an audit that fails while it writes leaves the folder as it was, and the next one replaces it
    before = sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*"))
    from oversight import report
    real = report.write
    def failing(result, folder):
        real(result, folder)
        raise OSError("disk full")
    monkeypatch.setattr(report, "write", failing)
    assert main(["audit", "--warehouse", str(wh), "--out", str(out)]) != 0
    monkeypatch.setattr(report, "write", real)
    assert sorted((p.relative_to(out), p.stat().st_mtime_ns) for p in out.rglob("*")) == before
    assert not list(tmp_path.glob(".audit*"))
    assert main(["audit", "--warehouse", str(wh), "--out", str(out)]) == 0
    batch_out = demo_run["out"]
    before = sorted((p.relative_to(batch_out), p.stat().st_mtime_ns) for p in batch_out.rglob("*"))
    capsys.readouterr()
    assert main(["audit", "--warehouse", str(wh), "--out", str(batch_out)]) == 2
    assert "is a batch's output folder (it holds .sentinel-output)" in capsys.readouterr().err
    assert sorted((p.relative_to(batch_out), p.stat().st_mtime_ns) for p in batch_out.rglob("*")) == before


@pytest.mark.slow
def test_audit_of_a_larger_city_flags_only_where_the_planted_facts_differ(tmp_path):
    """A 500,000-person city (10 planted cases per variant): enough warnings to test groups. The
    generator picks its subjects at random over the city (county, township, sex), but plants each
    variant in one program (so at some ages): the audit flags no county, township or sex, and each
    program or age band it flags is one where the planted anomalies differ the same way."""
    from data_contracts.ingest import ingest
    from synthetic.city import generate

    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    key = generate(persons=500_000, seed=5, out=landing, as_of=AS_OF)
    batch_id = ingest(landing, wh, AS_OF).batch_id
    with duckdb.connect(str(wh)) as con:
        run_rules(con, AS_OF, batch_id)
        scorer.score(con, AS_OF, batch_id, tmp_path / "models")
        update_warnings(con, AS_OF, batch_id)
        a = audit.compute(con, answer_key=key)
    allv = pl.concat(list(a.views.values()))
    tested = allv.filter(pl.col("q_value").is_not_null())
    assert tested.filter(pl.col("view").is_in(["county", "township", "sex"])).height >= 20  # tested, not skipped
    flags = a.flags.filter(pl.col("flagged_rate"))
    assert flags.filter(pl.col("view").is_in(["county", "township", "sex"])).height == 0, flags.to_dicts()
    assert flags["facts_agree"].all(), flags.filter(~pl.col("facts_agree")).to_dicts()


def test_audit_flags_exactly_the_township_a_biased_rule_picks_on(demo_run, tmp_path):
    wh = _copy(demo_run, tmp_path)
    batch_id = demo_run["summary"]["batch_id"]
    with duckdb.connect(str(wh)) as con:
        con.execute("CREATE TEMP TABLE real_hits AS SELECT * FROM rule_hits").fetchall()
        res = run_rules(con, AS_OF, batch_id, rules_dir=BIASED)
        assert res["hits"] > 0
        con.execute("INSERT INTO rule_hits SELECT * FROM real_hits").fetchall()
        update_warnings(con, AS_OF, batch_id)
        a = audit.compute(con, extra_rules_dirs=(BIASED,))
    flags = a.flags.filter(pl.col("flagged_rate"))
    town = "340504/雨山街道"
    assert set(flags.filter(pl.col("level") == "rule")["key"]) == {"biased_township"}
    assert set(zip(flags["view"], flags["group"])) == {("township", town)}
    row = flags.filter(pl.col("level") == "rule").row(0, named=True)
    assert row["rate_ratio"] > 1.25 and row["expected"] >= audit.MIN_EXPECTED and row["q_value"] < audit.FDR
    # its county is above the rest too, but only because of the township: not flagged
    county = a.views["county"].filter((pl.col("key") == "biased_township") & (pl.col("group") == "340504"))
    assert county["rate_ratio"][0] > 1.0 and not county["flagged_rate"][0]
    # the real rules stay unflagged beside it
    assert a.flags.filter((pl.col("level") == "rule") & (pl.col("key") != "biased_township")).height == 0


def test_confirmed_share_far_below_the_rest_is_flagged(demo_run, tmp_path):
    """Conclusions planted in dispositions: the biased township's warnings are all cleared, the rest
    mostly confirmed: its confirmed share is flagged. The rest's few cleared ones are picked by the
    subject's number (md5), not by warning_id: warning ids are salted per warehouse, so picking by them
    drew a new sample every run and now and then one that left an age band's share low too."""
    wh = _copy(demo_run, tmp_path)
    batch_id = demo_run["summary"]["batch_id"]
    with duckdb.connect(str(wh)) as con:
        run_rules(con, AS_OF, batch_id, rules_dir=BIASED)
        update_warnings(con, AS_OF, batch_id)
        # the township the audit groups by is where the person is registered (a warning's is where the
        # paying county's verifier goes: the payment's own for a person registered in another county)
        con.execute("""INSERT INTO dispositions (warning_id, conclusion, status, recorded_at, line)
            WITH w AS (SELECT *, subject_id IN (SELECT id_number FROM stg_household_registration
                                                WHERE township = '雨山街道') AS there FROM warnings)
            SELECT warning_id, CASE WHEN there OR right(md5(subject_id), 1) = '0' THEN '不属实' ELSE '属实' END,
                   CASE WHEN there OR right(md5(subject_id), 1) = '0' THEN 'cleared' ELSE 'confirmed' END,
                   now(), 1
            FROM w WHERE rule_id = 'biased_township@v1'""").fetchall()
        a = audit.compute(con, extra_rules_dirs=(BIASED,))
    f = a.flags.filter(pl.col("flagged_confirmed") & (pl.col("level") == "rule"))
    assert set(zip(f["view"], f["group"])) == {("township", "340504/雨山街道")}
    assert f["confirmed_share"][0] == 0.0 and f["rest_confirmed_share"][0] > 0.5


def test_explain_a_warning_of_each_category(demo_run, tmp_path, capsys):
    wh = demo_run["warehouse"]
    with duckdb.connect(str(wh), read_only=True) as con:
        picks = con.execute("""SELECT category, any_value(warning_id ORDER BY warning_id) FROM warnings
                               GROUP BY category ORDER BY category""").fetchall()
        assert len(picks) >= 14
        parquet_rows = 0
        for category, wid in picks:
            w = con.execute("SELECT id_number, subject_type, rule_id, evidence FROM warnings WHERE warning_id = ?",
                            [wid]).fetchall()[0]
            text = explain(con, wid, mask_ids=True)
            assert f"预警 Warning {wid}" in text and f"（{category}）" in text
            assert w[2].split(",")[0] in text and "Rules (why it was raised)" in text
            assert "History" in text and "batch" in text
            if category != "model_outlier":
                assert "参数 parameters（适用范围 scope" in text, category
            # the records behind the evidence, with their lineage
            assert re.search(r"文件 file \S+，第 \d+ (行 line|条 row)，批次 batch \d+", text), category
            # a Parquet file's records are rows, numbered from 1 (_line counts the header's place)
            for name, n, unit in re.findall(r"文件 file (\S+)，第 (\d+) (行 line|条 row)，", text):
                assert (unit == "条 row") == name.endswith(".parquet"), (category, name, unit)
                parquet_rows += name.endswith(".parquet")
            # ID numbers: only the person concerned's in full
            person = w[0] if w[1] in ("person", "household") else None
            full = set(ID_IN_TEXT.findall(text))
            assert full <= {person}, category
            if person and ID_IN_TEXT.fullmatch(person):
                assert person in text
            unmasked = explain(con, wid, mask_ids=False)
            others = set(ID_IN_TEXT.findall(w[3] or "")) - {person}
            assert all(o in unmasked for o in others)
    assert parquet_rows > 0  # the demo city delivers payments and vehicles as Parquet too
    # the CLI: one warning, and an unknown id refused in one line
    assert main(["explain", picks[0][1], "--warehouse", str(wh), "--mask-ids"]) == 0
    assert picks[0][1] in capsys.readouterr().out
    assert main(["explain", "WNOSUCHWARNING", "--warehouse", str(wh)]) == 2
    assert "WNOSUCHWARNING" in capsys.readouterr().err


def test_a_warning_is_recomputed_from_what_it_recorded(demo_run, tmp_path):
    wh = _copy(demo_run, tmp_path)
    with duckdb.connect(str(wh)) as con:
        picks = con.execute("""SELECT any_value(warning_id ORDER BY warning_id) FROM warnings
                               WHERE category NOT IN ('model_outlier') GROUP BY category""").fetchall()
        for (wid,) in picks:
            w = con.execute("SELECT rule_id, rule_params, raised_batch_id, first_batch_id, amount_at_risk, "
                            "evidence, first_period, last_period, evidence_size FROM warnings WHERE warning_id = ?",
                            [wid]).fetchall()[0]
            rec = json.loads(w[1])
            assert set(rec) == set(w[0].split(",")) and all("params" in v for v in rec.values())
            assert w[2] == w[3] == demo_run["summary"]["batch_id"]
            hits = recompute(con, wid)
            assert hits.height >= 1, wid
            assert max(hits["amount_at_risk"]) == w[4]
            again = "；".join(sorted(hits["evidence"]))
            # exact, but for the order inside a list: service_order_after_death's providers come from
            # string_agg(DISTINCT ...) without ORDER BY (rules/service_order_after_death.yaml), so
            # their order varies from run to run; the parts must still be the same
            assert w[5] == again or sorted(re.split(r"[、；]", w[5])) == sorted(re.split(r"[、；]", again)), wid
            assert (min(hits["first_period"]), max(hits["last_period"]), max(hits["evidence_size"])) == w[6:9]
        # other parameter values would not give the same warning: the recorded ones matter
        wid = con.execute("SELECT warning_id FROM warnings WHERE rule_id = 'deceased_paid@v1' "
                          "ORDER BY warning_id LIMIT 1").fetchall()[0][0]
        con.execute("""UPDATE warnings SET rule_params = replace(rule_params, '"grace_months": 0', '"grace_months": 60')
                       WHERE warning_id = ?""", [wid]).fetchall()
        assert recompute(con, wid).height == 0


def test_model_card_written_with_the_model(demo_run, tmp_path):
    kept = scorer.default_model_dir(demo_run["warehouse"]) / card.CARD_FILE
    text = kept.read_text(encoding="utf-8")
    for part in ("## Training data", "`amount_ratio_max`", "## Drift since training", "## Known limits",
                 "Average precision on the generator's planted model_outlier persons: n/a"):
        assert part in text
    assert not ID_IN_TEXT.search(text)
    summary = (demo_run["out"] / "summary.md").read_text(encoding="utf-8")
    assert "## Oversight" in summary and f"]({kept.resolve().as_uri()})" in summary
    # a refit with the answer key known: the AP is on the card, and the training scores' distribution
    wh = _copy(demo_run, tmp_path)
    with duckdb.connect(str(wh)) as con:
        s = scorer.score(con, AS_OF, 1, tmp_path / "models", retrain=True,
                         answer_key=answer_key_path(demo_run["landing"]))
    text = (tmp_path / "models" / card.CARD_FILE).read_text(encoding="utf-8")
    ap = re.search(r"planted model_outlier persons: ([0-9.]+)", text)
    assert ap and 0 < float(ap.group(1)) <= 1 and s["planted_outlier_ap"] == pytest.approx(float(ap.group(1)), abs=1e-4)
    assert "Score distribution on the training data: 1%:" in text


def test_summary_section_lists_flags_without_id_numbers(demo_run):
    a = audit.audit_warehouse(demo_run["warehouse"])
    text = report.summary_section(a, None)
    assert text.startswith("## Oversight") and "No group flagged." in text


def test_vectorised_binomial_test_equals_scipys():
    """The audit's vectorised two-sided binomial test gives scipy.stats.binomtest's p-values exactly,
    on every k of small n, on n * p whole (ties at the mode), and on random large cases."""
    import numpy as np
    from scipy.stats import binomtest

    rng = np.random.default_rng(7)
    cases = [(k, n, p) for n in (1, 2, 5, 10, 40) for p in (0.5, 0.1, 0.25, 1 / 3, 0.9) for k in range(n + 1)]
    cases += [(int(rng.integers(0, n + 1)), int(n), float(p))
              for n, p in zip(rng.integers(1, 20_000, 300), rng.uniform(0.001, 0.999, 300))]
    k, n, p = (np.array(c) for c in zip(*cases))
    ours = audit.binomtest_two_sided(k, n, p)
    theirs = np.array([binomtest(int(a), int(b), float(c)).pvalue for a, b, c in cases])
    assert np.array_equal(ours, theirs), [(c, o, t) for c, o, t in zip(cases, ours, theirs) if o != t][:5]


def test_group_counts_equal_a_count_person_by_person():
    """audit._counts folds the population before it meets the keys; a plain count over every person
    and key gives the same rows: a person paid in two programs, a warning naming no program (every
    pair of the person counts), one naming a program its rule does not apply to, one naming a person
    outside the paid population, one naming a person paid only in programs its rule does not apply to,
    a key with no programs."""
    pop = pl.DataFrame({
        "id_number": ["a", "a", "b", "c", "d", "e"],
        "program_code": ["DIBAO", "GAOLING", "DIBAO", "GAOLING", "TEKUN", "DIBAO"],
        "county_code": ["X", "X", "X", "Y", "Y", None], "township": ["X/1", "X/1", "X/2", "Y/1", "Y/1", "?/?"],
        "sex": ["男", "男", "女", "女", "unknown", "男"], "age_band": ["80+", "80+", "18-59", "70-79", "0-17", "18-59"]})
    warned = pl.DataFrame({
        "rule_id": ["r1", "r1", "r2", "r2", "r3", "r1", "r3"],
        "id_number": ["a", "b", "a", "c", "d", "z", "c"],
        "program_code": [None, "DIBAO", "GAOLING", "DIBAO", "TEKUN", "DIBAO", None]})
    keys = {"r1": ("DIBAO",), "r2": ("DIBAO", "GAOLING"), "r3": ("TEKUN",), "r4": ()}
    got = audit._counts(pop, warned, "rule_id", keys)

    first = pop.sort("id_number", "program_code").unique("id_number", keep="first", maintain_order=True)
    for view in audit.VIEWS:
        col = audit.VIEW_COLUMN[view]
        expected = {}
        for key, progs in keys.items():
            mine = warned.filter(pl.col("rule_id") == key)
            if view == "program":
                for row in pop.iter_rows(named=True):
                    if row["program_code"] not in progs:
                        continue
                    hit = any(w["id_number"] == row["id_number"] and w["program_code"] in (None, row["program_code"])
                              for w in mine.iter_rows(named=True))
                    n, x = expected.get((key, str(row[col])), (0, 0))
                    expected[(key, str(row[col]))] = (n + 1, x + hit)
            else:
                for row in first.iter_rows(named=True):
                    paid = set(pop.filter(pl.col("id_number") == row["id_number"])["program_code"])
                    if not paid & set(progs):
                        continue
                    hit = row["id_number"] in set(mine["id_number"])
                    g = "None" if row[col] is None else row[col]
                    n, x = expected.get((key, g), (0, 0))
                    expected[(key, g)] = (n + 1, x + hit)
        rows = {(k, g): (n, x) for k, g, n, x in got[view].iter_rows()}
        assert rows == expected, view
    assert got["program"].filter(pl.col("key") == "r1", pl.col("group") == "DIBAO").row(0)[2:] == (3, 2)
    # keys none of which has a program (rules the catalog given to the audit does not know): no population
    assert all(f.height == 0 for f in audit._counts(pop, warned, "rule_id", {"r9": ()}).values())


def test_audit_reads_the_kept_views_only_while_they_are_current(demo_run, tmp_path):
    """The audit reads v_payment from mat_v_payment while the rules' last batch is the warehouse's latest
    (rules/materialised.py), else the view: a table emptied on purpose shows which one it read."""
    from data_contracts.load import next_batch_id
    from rules import materialised

    wh = tmp_path / "w.duckdb"
    shutil.copy(demo_run["warehouse"], wh)
    with duckdb.connect(str(wh)) as con:
        assert materialised.current(con)
        base = audit.compute(con)
        assert base.views["county"].height > 0
        con.execute("DELETE FROM mat_v_payment")
        assert audit.compute(con).views["county"].height == 0  # read the (emptied) table: nobody paid
        con.execute("INSERT INTO runs (batch_id, as_of, outcome) VALUES (?, ?, 'ingested')",
                    [next_batch_id(con), AS_OF])  # an ingest since, on its own
        assert not materialised.current(con)
        assert audit.compute(con).views["county"].equals(base.views["county"])  # the view again
        assert con.execute("SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name IN ('v_person', 'v_payment')"
                           ).fetchall() == [(0,)]  # the shadows are gone with the block


def test_romanised_chart_labels_read_place_names_as_words():
    """Without a CJK font the charts' group labels are romanised (oversight/report.py): place names are
    read as words, with pypinyin's phrase dictionary (rules/pinyin.py load_phrases), while the rules'
    name readings stay one character at a time whether it is loaded or not."""
    import polars as pl

    from oversight.report import _label
    from rules.names import name_readings

    assert _label("长沙", None) == "ChangSha" and _label("重庆", None) == "ChongQing"
    assert _label("男", None) == "male"
    assert name_readings(pl.Series(["重庆"]))["reading"].to_list() == ["zhong qing"]
