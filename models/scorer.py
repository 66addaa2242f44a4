"""The scorer stage: isolation-forest anomaly scores for every paid person, and model_outlier hits.

``score(con, as_of, batch_id, model_dir, retrain=False)`` (DEVELOPERS.md, stage interface):

1. features per paid person, in DuckDB (``sql/model/model_features.sql``, models/features.py);
2. the kept model under ``model_dir`` is used as it is, unless ``retrain`` or none is kept (or it
   no longer fits the code's features): then a seeded IsolationForest is fitted on tonight's
   features and kept with its metadata (models/store.py);
3. drift check of tonight's features against the training data (PSI, models/drift.py): a warning
   is logged and returned in the summary when a feature drifted;
4. score = ``-IsolationForest.score_samples(x)``: the anomaly score of Liu, Ting and Zhou (2008),
   ``s = 2 ** (-E[h(x)] / c(psi))``, which lies in (0, 1] by construction (about 0.5 and below
   is ordinary, near 1 is isolated at once). It is absolute for a given model, so a person's
   score means the same from night to night while the model is kept (a rank-normalised score
   would not). Clipped to [0, 1];
5. ``model_scores``: every person scored, with the three most unusual features (models/explain.py);
6. the model card (models/card.py, ``MODEL_CARD.md`` beside the kept model): written when a model is
   fitted, brought up to date (tonight's scores, drift) each night;
0. first, a night where nothing the scores depend on changed carries last night's over (``_carry``);
7. ``model_hits``: the top k persons (default 0.1% of persons scored, at least 1) that no rule
   raised (``rule_hits``, a missing table meaning no hits), category model_outlier, with
   evidence in Chinese naming the three features, their values and the population's percentiles.

Returns counts and model facts only, never an ID number.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from data_contracts import warehouse
from data_contracts.policy import MODEL_SEVERITY
from models import card, default_model_dir, drift, explain, features, store  # noqa: F401 (default_model_dir re-exported)

log = logging.getLogger(__name__)

RULE_ID = "model_outlier"
CATEGORY = "model_outlier"
DEFAULT_TOP_FRACTION = 0.001
DEFAULT_WINDOW_MONTHS = 12
# what model_reasons keeps of a person's explanation (models/explain.py): what the hits' evidence reads
REASON_COLUMNS = tuple(f"{c}{r}{suffix}" for r in range(1, explain.TOP + 1)
                       for c, suffix in (("f", ""), ("v", ""), ("p", ""), ("h", ""), ("s", "_pct")))


def _table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    # fetchall, not fetchone: DuckDB 2.0 keeps a result open until it is fetched to the end
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]).fetchall()
    return bool(rows and rows[0][0])


def rule_raised(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Persons some rule raised (``sql/model/model_rule_raised.sql``); empty when rule_hits does not exist."""
    if not _table_exists(con, "rule_hits"):
        return pl.DataFrame(schema={"id_number": pl.String})
    return warehouse.frame(con, warehouse.load(features.SQL_FOLDER, "model_rule_raised"))


def top_k_count(n: int, top_fraction: float = DEFAULT_TOP_FRACTION, top_k: int | None = None) -> int:
    if n == 0:
        return 0
    return min(n, top_k if top_k is not None else max(1, math.ceil(top_fraction * n)))


def score(con: duckdb.DuckDBPyConnection, as_of: dt.date, batch_id: int, model_dir: Path | str,
          retrain: bool = False, *, top_fraction: float = DEFAULT_TOP_FRACTION, top_k: int | None = None,
          window_months: int = DEFAULT_WINDOW_MONTHS, drift_threshold: float = drift.DEFAULT_THRESHOLD,
          params: dict | None = None, answer_key: Path | str | None = None, engine=None) -> dict:
    """``engine``: a :class:`data_contracts.spark.Spark` computes the features there; the scoring is here."""
    t0 = time.perf_counter()
    model_dir = Path(model_dir)
    names = features.FEATURE_NAMES
    period_from, period_to = features.window(as_of, window_months)
    carried = _carry(con, as_of, batch_id, model_dir, retrain, window_months, top_fraction, top_k, engine)
    if carried is not None:
        carried["seconds"] = {"total": round(time.perf_counter() - t0, 3)}
        return carried
    feats = features.compute(con, as_of, window_months, engine=engine, batch_id=batch_id)
    X = feats.select(names).to_numpy().astype(np.float64, copy=False)
    n = X.shape[0]
    t_feat = time.perf_counter()
    summary: dict = {"persons_scored": n, "window": [period_from, period_to], "hits": 0}

    if n == 0:
        log.warning("scorer: no paid person in the window %s..%s; nothing scored", period_from, period_to)
        _write(con, batch_id, pl.DataFrame(schema={"id_number": pl.String, "score": pl.Float64,
                                                   "explanation": pl.String}), None)
        return {**summary, "model_version": None, "retrained": False, "drift": None, "top_k": 0,
                "excluded_by_rules": 0, "seconds": round(time.perf_counter() - t0, 3)}

    kept, why = (None, "retrain requested") if retrain else store.load(model_dir, names)
    retrained = kept is None
    if retrained:
        prev = (store.read_meta(model_dir) or {}).get("version", 0)
        log.info("scorer: fitting a new model (%s) on %d persons", why, n)
        model = store.fit(X, params)
        kept = store.save(model_dir, model, names, as_of=as_of, window=(period_from, period_to),
                          reference=drift.reference(X, names), previous_version=int(prev))
    else:
        log.info("scorer: using kept model v%d (trained %s on %d persons)", kept.version,
                 kept.meta["trained_as_of"], kept.meta["train_rows"])
    t_fit = time.perf_counter()

    drift_report = drift.check(kept.meta["reference"], X, names, drift_threshold)
    if drift_report["warning"]:
        log.warning("scorer: features drifted from the training data of model v%d (PSI > %.2f): %s",
                    kept.version, drift_threshold,
                    ", ".join(f"{f} {drift_report['psi'][f]:.2f}" for f in drift_report["drifted_features"]))

    s = np.clip(-kept.model.score_samples(X), 0.0, 1.0)
    t_score = time.perf_counter()

    top = explain.with_share_pct(explain.top_features(X, names))
    scored = pl.concat([feats.select("id_number"), top], how="horizontal").with_columns(
        score=pl.Series(s, dtype=pl.Float64))
    scored = scored.with_columns(
        explanation=explain.explanation_en(),
        rank=pl.col("score").rank("ordinal", descending=True).cast(pl.Int64),
    )

    raised = rule_raised(con)
    k = top_k_count(n, top_fraction, top_k)
    candidates = scored.join(raised, on="id_number", how="anti")
    chosen = candidates.sort(["score", "id_number"], descending=[True, False]).head(k)
    hits = _hits(con, chosen, batch_id, kept, n, period_from, period_to)
    fp = _fingerprint(kept, window_months, top_fraction, top_k, (period_from, period_to),
                      "duckdb" if engine is None else "spark")
    # the reasons of the persons a later night may choose without computing the features again
    reasons = scored.sort(["score", "id_number"], descending=[True, False]).head(
        2 * k + scored.height - candidates.height).select("id_number", *REASON_COLUMNS)
    _write(con, batch_id, scored.select("id_number", "score", "explanation").with_columns(
        raised=pl.col("id_number").is_in(raised["id_number"].implode()), fingerprint=pl.lit(fp)), hits, reasons)
    if retrained:  # tonight's data is the training data: its score distribution is the card's baseline
        kept.meta["train_score_quantiles"] = card._quantiles(s)
        store.update_meta(model_dir, train_score_quantiles=kept.meta["train_score_quantiles"])
    ap = card.average_precision(answer_key or card.answer_key_from_env(), feats["id_number"].to_list(), s)
    card.write_card(model_dir, kept.meta, as_of=as_of, persons=n, scores=s, drift_report=drift_report,
                    hits=hits.height, ap=ap)
    t_end = time.perf_counter()

    summary.update({
        "model_version": kept.version,
        "retrained": retrained,
        "model_reason": why,
        "trained_as_of": kept.meta["trained_as_of"],
        "train_rows": kept.meta["train_rows"],
        "drift": drift_report,
        "top_k": k,
        "excluded_by_rules": int(scored.height - candidates.height),
        "hits": hits.height,
        "model_card": card.CARD_FILE,
        "planted_outlier_ap": None if ap is None else round(ap, 4),
        "score_quantiles": {q: round(float(np.quantile(s, q)), 4) for q in (0.5, 0.99, 0.999)},
        "seconds": {"features": round(t_feat - t0, 3), "fit": round(t_fit - t_feat, 3),
                    "score": round(t_score - t_fit, 3), "explain_write": round(t_end - t_score, 3),
                    "total": round(t_end - t0, 3)},
    })
    log.info("scorer: %d persons scored, %d model_outlier hits (top %d, %d persons already raised by rules), "
             "max PSI %.3f, %.1f s", n, hits.height, k, summary["excluded_by_rules"], drift_report["max_psi"],
             t_end - t0)
    return summary


def _fingerprint(kept: store.KeptModel, window_months: int, top_fraction: float, top_k: int | None,
                 window: tuple[str, str], engine: str = "duckdb") -> str:
    """What tonight's scores and hits depend on besides the data and the rules' hits: the kept model
    (its version and file), the features' code, window and engine, the scorer's settings."""
    body = json.dumps({"model": [kept.version, kept.meta.get("sha256")], "features": features.FEATURE_NAMES,
                       "engine": engine,
                       "sql": [warehouse.load(features.SQL_FOLDER, n) for n in ("model_features", "model_hit_subjects")],
                       "window": [window_months, *window], "top": [top_fraction, top_k]}, sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def _carry(con: duckdb.DuckDBPyConnection, as_of: dt.date, batch_id: int, model_dir: Path, retrain: bool,
           window_months: int, top_fraction: float, top_k: int | None, engine) -> dict | None:
    """Last night's model_scores and model_hits, renumbered to this batch, when nothing the scores
    depend on changed: no staged row they read changed tonight (``sql/model/model_inputs_changed.sql``:
    no registration, no payment of the window), the same kept model, features' code, window, engine
    and settings (the fingerprint). Where the rules raise other scored persons than last night, the
    hits are chosen again from the same scores, with the reasons kept in ``model_reasons`` (all is
    recomputed when a chosen person has none). Exact: the features, scores, explanations, ranks and
    hits are then what a recomputation gives. The model card stays last night's. None (recompute)
    otherwise, on Spark, or with SENTINEL_FULL_RECOMPUTE=1."""
    if retrain or engine is not None or os.environ.get("SENTINEL_FULL_RECOMPUTE", "") not in ("", "0"):
        return None
    if not all(_table_exists(con, t) for t in ("model_scores", "model_hits", "model_reasons", "changed_subjects",
                                                "rule_hits")):
        return None
    if "fingerprint" not in warehouse.columns_of(con, "model_scores"):
        return None
    window = features.window(as_of, window_months)
    changed = warehouse.execute(con, warehouse.load(features.SQL_FOLDER, "model_inputs_changed"),
                                {"batch_id": batch_id, "period_from": window[0], "period_to": window[1]})[0][0]
    if changed:
        return None
    kept, _ = store.load(model_dir, features.FEATURE_NAMES, model=False)  # its metadata: no scikit-learn
    if kept is None:
        return None
    tonight_raised = rule_raised(con).to_arrow()  # read by name by the SQL below (DuckDB's replacement scan)
    last, fp, fps, differ = con.execute(warehouse.load(features.SQL_FOLDER, "carry_scores")).fetchall()[0]
    if last != batch_id - 1 or fps != 1 or fp != _fingerprint(kept, window_months, top_fraction, top_k, window):
        return None
    n = warehouse.execute(con, "SELECT count(*) FROM model_scores")[0][0]
    if not differ:
        with warehouse.transaction(con):
            for table in ("model_scores", "model_hits", "model_reasons"):
                warehouse.execute(con, f"UPDATE {table} SET batch_id = ?", [batch_id])
        how = "carried over"
    else:
        # the same scores, other persons raised: tonight's choice made again from the kept reasons
        chosen = pl.from_arrow(con.sql(warehouse.load(features.SQL_FOLDER, "model_reselect"),
                                       params={"k": top_k_count(n, top_fraction, top_k)}).to_arrow_table())
        if chosen["f1"].null_count():
            return None  # a chosen person whose reasons were not kept: everything is computed again
        _write(con, batch_id, None, _hits(con, chosen, batch_id, kept, n, *window),
               tonight_raised=tonight_raised)
        how = "carried over, the hits chosen again (the rules raise other persons)"
    excluded = warehouse.execute(con, "SELECT count(*) FILTER (WHERE raised) FROM model_scores")[0][0]
    hits = warehouse.execute(con, "SELECT count(*) FROM model_hits")[0][0]
    log.info("scorer: nothing it reads changed since batch %d: its %d scores %s; %d model_outlier hits",
             last, n, how, hits)
    return {"persons_scored": n, "window": list(window), "hits": hits, "model_version": kept.version,
            "retrained": False, "model_reason": "kept model; scores carried over (nothing they depend on changed)",
            "trained_as_of": kept.meta["trained_as_of"], "train_rows": kept.meta["train_rows"], "drift": None,
            "top_k": top_k_count(n, top_fraction, top_k), "excluded_by_rules": excluded, "carried": True}


def _hits(con: duckdb.DuckDBPyConnection, chosen: pl.DataFrame, batch_id: int, kept: store.KeptModel,
          n: int, period_from: str, period_to: str) -> pl.DataFrame:
    """model_hits rows for the chosen persons: their facts from ``sql/model/model_hit_subjects.sql`` and
    the Chinese evidence."""
    model_top = chosen.select("id_number").to_arrow()
    con.register("model_top", model_top)
    try:
        facts = warehouse.frame(con, warehouse.load(features.SQL_FOLDER, "model_hit_subjects"),
                                {"period_from": period_from, "period_to": period_to})
    finally:
        con.unregister("model_top")
    df = chosen.join(facts, on="id_number", how="left")
    meta = kept.meta
    evidence = pl.format(
        "孤立森林模型异常分 {}（本批 {} 名受助人员中第 {} 高），未被任何规则预警。最不寻常的三项特征："
        "1) {}；2) {}；3) {}。{} 至 {} 共发放 {} 笔、{} 元（{}）。"
        "模型 v{}，训练于 {}（{} 人）。此为线索，需核实。",
        pl.col("score").round(3).cast(pl.Decimal(18, 3)).cast(pl.String), pl.lit(n), pl.col("rank"),
        explain.feature_zh(1), explain.feature_zh(2), explain.feature_zh(3),
        pl.col("first_period"), pl.col("last_period"), pl.col("evidence_size"),
        pl.col("amount_at_risk").cast(pl.String), pl.col("programs"),
        pl.lit(kept.version), pl.lit(meta["trained_as_of"]), pl.lit(meta["train_rows"]),
    )
    computed = {
        "batch_id": pl.lit(batch_id, pl.Int64), "rule_id": pl.lit(RULE_ID),
        "rule_version": pl.lit(kept.version, pl.Int32), "category": pl.lit(CATEGORY),
        "severity": pl.lit(MODEL_SEVERITY), "subject_type": pl.lit("person"), "subject_id": pl.col("id_number"),
        "evidence": evidence,
    }
    # model_hits' columns, in the contract's order (sql/warehouse/model_hits.sql)
    return df.sort("rank").select(computed.get(c, pl.col(c)).alias(c) for c in warehouse.column_names("model_hits"))


def _write(con: duckdb.DuckDBPyConnection, batch_id: int, scored: pl.DataFrame | None, hits: pl.DataFrame | None,
           reasons: pl.DataFrame | None = None, tonight_raised=None) -> None:
    """Replace model_scores (``scored``; None: keep them, renumbered, and ``tonight_raised``, the persons
    the rules raise tonight, their ``raised`` flags), model_hits and model_reasons
    (None: keep them, renumbered) in one transaction. The caller must not hold one open: DuckDB cannot
    nest them, and a failed BEGIN aborts the caller's transaction, so it cannot be probed. The frames
    are scanned by name (DuckDB's replacement scan), not registered: a view registered in a
    transaction keeps its table alive until the commit (and DuckDB looks for them in the frame that
    calls ``execute``: this one)."""
    number = pl.lit(batch_id, pl.Int64).alias("batch_id")
    new_scores = scored.select(number, pl.all()).to_arrow() if scored is not None else None
    new_hits = hits.to_arrow() if hits is not None and hits.height else None
    new_reasons = reasons.select(number, pl.all()).to_arrow() if reasons is not None else None
    with warehouse.transaction(con):
        warehouse.recreate(con, "model_hits")
        if new_hits is not None:
            con.execute("INSERT INTO model_hits BY NAME SELECT * FROM new_hits").fetchall()
        if new_scores is not None:
            warehouse.recreate(con, "model_scores")
            con.execute("INSERT INTO model_scores BY NAME SELECT * FROM new_scores").fetchall()
        else:
            con.execute("UPDATE model_scores SET batch_id = ?, "
                        "raised = id_number IN (SELECT id_number FROM tonight_raised)", [batch_id]).fetchall()
        warehouse.ensure(con, "model_reasons")
        if new_reasons is not None:
            warehouse.recreate(con, "model_reasons")
            con.execute("INSERT INTO model_reasons BY NAME SELECT * FROM new_reasons").fetchall()
        elif scored is not None:  # new scores without reasons (nobody scored): none kept
            warehouse.recreate(con, "model_reasons")
        else:
            warehouse.execute(con, "UPDATE model_reasons SET batch_id = ?", [batch_id])
