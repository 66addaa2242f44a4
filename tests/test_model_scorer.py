"""The scorer stage on small hand-built warehouses: scores, kept model, drift, top-k, evidence."""
from __future__ import annotations

import logging
import re

import polars as pl
import pytest

from data_contracts import warehouse
from models import features, scorer, store
from tests.model_fixtures import AS_OF
from tests.model_fixtures import warehouse as city_warehouse

ID_RE = re.compile(r"\d{17}[\dX]")


def _table(con, q):
    return pl.from_arrow(con.sql(q).to_arrow_table())


def _rule_hits(con, persons):
    warehouse.ensure(con, "rule_hits")  # the contract's table (sql/warehouse/rule_hits.sql)
    for subject_type, subject_id, id_number in persons:
        con.execute("INSERT INTO rule_hits (batch_id, rule_id, rule_version, category, severity, subject_type, subject_id, "
                    "id_number) VALUES (1, 'r', 1, 'x', 'low', ?, ?, ?)", [subject_type, subject_id, id_number])


@pytest.fixture
def city(tmp_path):
    con, outliers = city_warehouse(tmp_path / "w.duckdb")
    yield con, outliers, tmp_path / "models"
    con.close()


def test_scores_every_paid_person_in_0_1_and_finds_the_outliers(city):
    con, outliers, mdir = city
    s = scorer.score(con, AS_OF, 1, mdir, top_k=3)
    scores = _table(con, "SELECT * FROM model_scores")
    assert s["persons_scored"] == scores.height == 403
    assert scores["batch_id"].unique().to_list() == [1]
    assert scores["score"].is_between(0.0, 1.0).all()
    assert scores["explanation"].null_count() == 0
    hits = _table(con, "SELECT * FROM model_hits ORDER BY subject_id")
    assert sorted(hits["subject_id"].to_list()) == sorted(outliers)
    assert set(hits["category"]) == {"model_outlier"} and set(hits["subject_type"]) == {"person"}
    assert (hits["subject_id"] == hits["id_number"]).all()
    assert hits["rule_version"].to_list() == [1, 1, 1]
    assert hits["amount_at_risk"].cast(pl.Float64).to_list() == [12 * 720.0] * 3
    assert hits["evidence_size"].to_list() == [12] * 3
    assert hits["county_code"].to_list() == ["110105"] * 3  # registered place, where the verifier goes


def test_default_k_is_a_tenth_of_a_percent(city):
    con, _, mdir = city
    s = scorer.score(con, AS_OF, 1, mdir)
    assert s["top_k"] == 1 == s["hits"]  # ceil(0.001 * 403)
    assert scorer.top_k_count(10_274) == 11 and scorer.top_k_count(0) == 0


def test_same_seed_same_scores(tmp_path):
    runs = []
    for i in range(2):
        con, _ = city_warehouse(tmp_path / f"w{i}.duckdb")
        scorer.score(con, AS_OF, 1, tmp_path / f"m{i}")
        runs.append(_table(con, "SELECT id_number, score, explanation FROM model_scores ORDER BY id_number"))
        con.close()
    assert runs[0].equals(runs[1])
    con, _ = city_warehouse(tmp_path / "w2.duckdb")
    scorer.score(con, AS_OF, 1, tmp_path / "m2", params={"random_state": 7})
    other = _table(con, "SELECT id_number, score, explanation FROM model_scores ORDER BY id_number")
    assert not other["score"].equals(runs[0]["score"])


def test_kept_model_is_reused_unless_retrain(city, monkeypatch):
    con, _, mdir = city
    first = scorer.score(con, AS_OF, 1, mdir)
    assert first["retrained"] and first["model_version"] == 1
    meta = store.read_meta(mdir)
    assert meta["features"] == list(features.FEATURE_NAMES)
    assert meta["train_rows"] == 403 and meta["trained_as_of"] == "2026-11-01"
    assert meta["params"]["random_state"] == store.DEFAULT_PARAMS["random_state"]
    before = _table(con, "SELECT id_number, score FROM model_scores ORDER BY id_number")

    def no_fit(*a, **k):
        raise AssertionError("refitted although a model is kept")

    monkeypatch.setattr(store, "fit", no_fit)
    second = scorer.score(con, AS_OF, 2, mdir)
    assert not second["retrained"] and second["model_version"] == 1
    assert _table(con, "SELECT id_number, score FROM model_scores ORDER BY id_number").equals(before)
    monkeypatch.undo()

    third = scorer.score(con, AS_OF, 3, mdir, retrain=True)
    assert third["retrained"] and third["model_version"] == 2
    assert _table(con, "SELECT DISTINCT rule_version FROM model_hits").item() == 2


def test_kept_model_with_other_features_is_refitted(city):
    con, _, mdir = city
    scorer.score(con, AS_OF, 1, mdir)
    kept, why = store.load(mdir, features.FEATURE_NAMES[:-1])
    assert kept is None and "features" in why
    (mdir / store.MODEL_FILE).write_bytes(b"tampered")
    kept, why = store.load(mdir, features.FEATURE_NAMES)
    assert kept is None and "sha256" in why
    assert scorer.score(con, AS_OF, 2, mdir)["retrained"]


def test_drift_warns_on_shifted_data_not_on_the_same(tmp_path, caplog):
    con, _ = city_warehouse(tmp_path / "w.duckdb")
    mdir = tmp_path / "models"
    scorer.score(con, AS_OF, 1, mdir)
    with caplog.at_level(logging.WARNING, logger="models.scorer"):
        same = scorer.score(con, AS_OF, 2, mdir)
    assert not same["drift"]["warning"] and same["drift"]["max_psi"] < 0.01
    assert not [r for r in caplog.records if "drift" in r.getMessage()]
    con.close()

    shifted, _ = city_warehouse(tmp_path / "s.duckdb", shift=3.0, seed=1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="models.scorer"):
        s = scorer.score(shifted, AS_OF, 3, mdir)
    assert not s["retrained"] and s["drift"]["warning"]
    assert "total_amount" in s["drift"]["drifted_features"]
    assert s["drift"]["psi"]["total_amount"] > s["drift"]["threshold"]
    assert any("drift" in r.getMessage() and "total_amount" in r.getMessage() for r in caplog.records)
    shifted.close()


def test_top_k_excludes_persons_raised_by_a_rule(city):
    con, outliers, mdir = city
    scorer.score(con, AS_OF, 1, mdir, top_k=3)  # no rule_hits table: no exclusions
    assert sorted(_table(con, "SELECT subject_id FROM model_hits")["subject_id"]) == sorted(outliers)
    # one outlier is a rule's person subject, another the payee of a household finding
    _rule_hits(con, [("person", outliers[0], outliers[0]), ("household", "H000001", outliers[1])])
    s = scorer.score(con, AS_OF, 2, mdir, top_k=3)
    hits = _table(con, "SELECT subject_id FROM model_hits")["subject_id"].to_list()
    assert s["excluded_by_rules"] == 2 and len(hits) == 3
    assert outliers[0] not in hits and outliers[1] not in hits and outliers[2] in hits
    # every excluded person is still scored
    assert _table(con, "SELECT count(*) AS n FROM model_scores").item() == 403


def test_evidence_names_three_features_with_values_and_percentiles(city):
    con, _, mdir = city
    scorer.score(con, AS_OF, 1, mdir, top_k=5)
    hits = _table(con, "SELECT subject_id, evidence FROM model_hits")
    assert hits.height == 5
    for subject, evidence in hits.iter_rows():
        named = re.findall(r"\(([a-z_]+)\) = (-?[\d.]+%?)", evidence)
        assert len(named) == 3, evidence
        assert {n for n, _ in named} <= set(features.FEATURE_NAMES) and len({n for n, _ in named}) == 3
        assert evidence.count("百分位") == 3 and ("高于" in evidence or "低于" in evidence)
        assert set(ID_RE.findall(evidence)) <= {subject}
        assert "62176" not in evidence  # no bank account either
    scores = _table(con, "SELECT explanation FROM model_scores")
    assert scores["explanation"].str.count_matches(r"\(P[\d.]+\)").to_list() == [3] * 403


def test_logs_carry_no_id_number(city, caplog):
    con, _, mdir = city
    with caplog.at_level(logging.DEBUG):
        summary = scorer.score(con, AS_OF, 1, mdir, top_k=3)
    assert not ID_RE.search(caplog.text)
    assert not ID_RE.search(repr(summary))


def test_nothing_paid_in_the_window_writes_empty_tables(city):
    con, _, mdir = city
    import datetime as dt

    s = scorer.score(con, dt.date(2030, 1, 1), 1, mdir)
    assert s["persons_scored"] == 0 and s["hits"] == 0
    assert _table(con, "SELECT count(*) AS n FROM model_scores").item() == 0
    assert _table(con, "SELECT count(*) AS n FROM model_hits").item() == 0


def test_default_model_dir_is_beside_the_warehouse(tmp_path):
    assert scorer.default_model_dir(tmp_path / "city.duckdb") == tmp_path / "city.models"
    assert scorer.default_model_dir(tmp_path / "wh") == tmp_path / "wh.models"


def test_a_single_paid_person(tmp_path):
    con, _ = city_warehouse(tmp_path / "w.duckdb", n=1, outliers=0)
    s = scorer.score(con, AS_OF, 1, tmp_path / "m")
    assert s["persons_scored"] == 1 and s["hits"] == 1
    assert 0.0 <= _table(con, "SELECT score FROM model_scores").item() <= 1.0
    con.close()


def test_a_night_that_carries_its_scores_needs_no_scikit_learn(city):
    """A night whose scores are carried over reads the kept model's metadata only (scorer._carry,
    `store.load(..., model=False)`): in a process of its own, as `sentinel serve` starts a night, the
    flow's code and that night's scorer stage leave scikit-learn unimported (0.75 s). The model file is
    still checked against its sha256."""
    import subprocess
    import sys

    con, _, mdir = city
    _rule_hits(con, [])  # tonight's rules raised no one, as last night
    warehouse.ensure(con, "changed_subjects")  # and tonight's ingest changed nothing
    first = scorer.score(con, AS_OF, 1, mdir)
    assert first["retrained"] and not first.get("carried")
    path = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]
    con.close()
    script = ("import sys, datetime as dt, duckdb\n"
              "from flows import prefect_api\n"
              "prefect_api.skip_unused_imports()\n"
              "import flows.nightly\n"
              "from models import scorer\n"
              f"con = duckdb.connect({path!r})\n"
              f"res = scorer.score(con, dt.date.fromisoformat({AS_OF.isoformat()!r}), 2, {str(mdir)!r})\n"
              "print(bool(res.get('carried')), res['model_version'], 'sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "1", "False"], out
    (mdir / store.MODEL_FILE).write_bytes(b"tampered")
    kept, why = store.load(mdir, features.FEATURE_NAMES, model=False)
    assert kept is None and "sha256" in why
