"""The kept model: a fitted IsolationForest (joblib) and its metadata (JSON) under ``model_dir``.

Files (replaced atomically, the JSON last, so a crash never leaves a model without its metadata):

- ``isolation_forest.joblib``: the fitted estimator;
- ``isolation_forest.json``: version (1, 2, ... one more at every retrain), the features in order,
  the estimator's parameters, the scikit-learn version, the batch date, window and row count of
  the data it learnt from, the sha256 of the joblib file, and the per-feature reference
  distribution the drift check compares tonight's features with (models/drift.py).

A kept model is refused (and the scorer retrains) when its feature list differs from the code's,
when its files are missing, or when the joblib's sha256 does not match the metadata.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.ensemble import IsolationForest

# scikit-learn and joblib are imported where a model is fitted, saved or loaded, not with this module:
# scikit-learn's import is 0.75 s, and a night whose scores are carried over (models/scorer.py `_carry`)
# needs only the model's metadata, checked against its file (`load(..., model=False)`). `sentinel run`
# imports it while the ingest runs (flows/launch.py `_ready_for_the_night`).

log = logging.getLogger(__name__)

MODEL_FILE = "isolation_forest.joblib"
META_FILE = "isolation_forest.json"

# Seeded and reproducible: same data in the same order and same parameters give the same model.
DEFAULT_PARAMS = {
    "n_estimators": 200,
    "max_samples": 256,  # the paper's subsample size; min(256, n) when fewer rows
    "max_features": 1.0,
    "bootstrap": False,
    "random_state": 20261101,
}


@dataclass
class KeptModel:
    model: IsolationForest | None  # None when loaded with model=False (the metadata only)
    meta: dict

    @property
    def version(self) -> int:
        return int(self.meta["version"])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_meta(model_dir: Path) -> dict | None:
    p = Path(model_dir) / META_FILE
    if not p.exists():
        return None
    return json.loads(p.read_text(encoding="utf-8"))


def load(model_dir: Path, features: tuple[str, ...], model: bool = True) -> tuple[KeptModel | None, str]:
    """The kept model, or None and why it cannot be used. ``model=False``: the same checks (its file
    is there and matches the metadata's sha256), but the model itself is not unpickled."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    if meta is None:
        return None, "no model kept yet"
    if tuple(meta.get("features", ())) != tuple(features):
        return None, "kept model's features differ from the code's"
    path = model_dir / MODEL_FILE
    if not path.exists():
        return None, f"{MODEL_FILE} missing"
    if _sha256(path) != meta.get("sha256"):
        return None, f"{MODEL_FILE} does not match its metadata (sha256)"
    if not model:
        return KeptModel(None, meta), "kept model's metadata read"
    import joblib

    return KeptModel(joblib.load(path), meta), "kept model loaded"


def fit(X: np.ndarray, params: dict | None = None) -> IsolationForest:
    from sklearn.ensemble import IsolationForest

    p = {**DEFAULT_PARAMS, **(params or {})}
    if isinstance(p["max_samples"], int):
        p["max_samples"] = min(p["max_samples"], X.shape[0])
    return IsolationForest(**p).fit(X)


def save(model_dir: Path, model: IsolationForest, features: tuple[str, ...], *, as_of: dt.date,
         window: tuple[str, str], reference: dict, previous_version: int = 0) -> KeptModel:
    import joblib
    import sklearn

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / (MODEL_FILE + ".tmp")
    joblib.dump(model, tmp)
    sha = _sha256(tmp)
    os.replace(tmp, model_dir / MODEL_FILE)
    params = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else str(v))
              for k, v in model.get_params().items()}
    meta = {
        "model": "sklearn.ensemble.IsolationForest",
        "version": previous_version + 1,
        "features": list(features),
        "params": params,
        "sklearn_version": sklearn.__version__,
        "trained_as_of": as_of.isoformat(),
        "trained_at": dt.datetime.now().isoformat(timespec="seconds"),
        "train_window": list(window),
        "train_rows": int(reference["rows"]),
        "sha256": sha,
        "reference": reference,
    }
    tmp_meta = model_dir / (META_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp_meta, model_dir / META_FILE)
    log.info("model v%d kept in %s (%d rows, batch date %s)", meta["version"], model_dir, meta["train_rows"],
             meta["trained_as_of"])
    return KeptModel(model, meta)


def update_meta(model_dir: Path, **values) -> None:
    """Add facts learnt after the fit (e.g. the training data's score distribution) to the metadata."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir) or {}
    meta.update(values)
    tmp_meta = model_dir / (META_FILE + ".tmp")
    tmp_meta.write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp_meta, model_dir / META_FILE)
