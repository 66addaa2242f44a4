"""The model card (issue 16): ``MODEL_CARD.md`` beside the kept model, written by the scorer
(models/scorer.py) when it fits a model and brought up to date each night it scores with it.

What it says: the model and its version, the features and why each is fair (from
models/FEATURES.md's table), the training window and size, the score distribution (at training
and tonight), drift since training (PSI per feature, models/drift.py), the average precision on
the generator's planted ``model_outlier`` persons when an answer key is known (``answer_key``, or
``$SENTINEL_ANSWER_KEY``; n/a for a real city), and known limits. Counts and model facts only:
no ID number.
"""
from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import numpy as np
import polars as pl

CARD_FILE = "MODEL_CARD.md"
FEATURES_MD = Path(__file__).resolve().parent / "FEATURES.md"
QUANTILES = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999)

LIMITS = [
    "A lead, not proof: severity low; a verifier checks every model_outlier warning on the records.",
    "Explanations are marginal rarity per feature (models/explain.py); a person unusual only in a combination "
    "of features gets an explanation that understates why.",
    "Trained on every paid person of one batch, anomalies included (isolation forests tolerate a few); a city "
    "where one kind of fraud is common would teach the model that it is normal.",
    "Training claims (PEIXUN) and home-care orders are not features: the model sees payments only.",
    "Persons paid under an invalid or missing ID number are scored on what was paid to that number.",
    "No protected attribute is a feature (sex, age, ethnicity, birthplace); the outcome audit "
    "(`sentinel audit`) checks where the warnings land by sex and age band, which the model never reads.",
]


def feature_rows() -> list[tuple[str, str, str]]:
    """(feature, what it measures, why it is fair) from FEATURES.md's table."""
    rows = []
    for line in FEATURES_MD.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\| `(\w+)` \| (.*?) \| (.*?) \| (.*?) \|$", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(4)))
    return rows


def average_precision(answer_key: Path | str | None, ids: list[str], scores: np.ndarray) -> float | None:
    """AP of the scores for the answer key's model_outlier subjects among the persons scored."""
    if answer_key is None or not Path(answer_key).is_file():
        return None
    from sklearn.metrics import average_precision_score

    key = pl.read_csv(answer_key, infer_schema=False)
    planted = key.filter((pl.col("category") == "model_outlier") & (pl.col("kind") == "anomaly"))["subject_id"]
    y = pl.Series(ids).is_in(planted.implode()).to_numpy()
    if not y.any():
        return None
    return float(average_precision_score(y, scores))


def _quantiles(s: np.ndarray) -> str:
    if len(s) == 0:
        return "n/a"
    return ", ".join(f"{int(q * 1000) / 10:g}%: {np.quantile(s, q):.3f}" for q in QUANTILES)


def write_card(model_dir: Path | str, meta: dict, *, as_of: dt.date, persons: int, scores: np.ndarray,
               drift_report: dict, hits: int, ap: float | None, train_scores: str | None = None) -> Path:
    """Write (replace) MODEL_CARD.md in ``model_dir``; returns its path."""
    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    features = "\n".join(f"| `{f}` | {what} | {fair} |" for f, what, fair in feature_rows()
                         if f in meta["features"])
    psi = drift_report.get("psi", {})
    drift_rows = "\n".join(f"| `{f}` | {v:.4f} | {'**drifted**' if f in drift_report.get('drifted_features', []) else ''} |"
                           for f, v in sorted(psi.items(), key=lambda kv: -kv[1]))
    params = ", ".join(f"{k}={v}" for k, v in sorted(meta["params"].items()) if v is not None)
    text = f"""# Model card: isolation forest v{meta['version']}

Written by the scorer (models/scorer.py); last brought up to date by the batch of {as_of.isoformat()}.

## Model
- `{meta['model']}` ({params}); scikit-learn {meta['sklearn_version']}; joblib sha256 `{meta['sha256'][:16]}…`.
- Purpose: `model_outlier` leads (severity low) for payment behaviour no rule names: the top 0.1% of persons
  by anomaly score whom no rule raised. Scores in 0..1 (Liu, Ting & Zhou 2008), comparable from night to
  night while this model is kept.

## Training data
- Batch date {meta['trained_as_of']}; scoring window {meta['train_window'][0]}..{meta['train_window'][1]}
  (the 12 full months before it); {meta['train_rows']:,} paid persons, one row each.
- Score distribution on the training data: {train_scores or meta.get('train_score_quantiles', 'n/a')}

## Features (and why each is fair; models/FEATURES.md)
| feature | what it measures | why it is fair |
|---|---|---|
{features}

No protected attribute is a feature: not sex, not age or birth date, not ethnicity or anything read
from a name, not birthplace (the ID number's region code is never read).

## Tonight ({as_of.isoformat()})
- {persons:,} persons scored; {hits} model_outlier hits.
- Score distribution: {_quantiles(scores)}

## Drift since training
PSI of tonight's features against the training data (> {drift_report.get('threshold', 0.25)} = drifted;
retraining is an operator's decision, `sentinel run --retrain`). Max PSI {drift_report.get('max_psi', 0.0):.4f}.

| feature | PSI | |
|---|---|---|
{drift_rows}

## Performance on planted outliers
Average precision on the generator's planted model_outlier persons: {f'{ap:.4f}' if ap is not None else 'n/a (no answer key known: a real city has none; `benchmarks/model_ap.py` measures it on a generated one)'}

## Known limits
""" + "\n".join(f"- {x}" for x in LIMITS) + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def answer_key_from_env() -> Path | None:
    v = os.environ.get("SENTINEL_ANSWER_KEY")
    return Path(v) if v else None
