"""Drift check: how far tonight's features are from the data the kept model learnt from.

Per feature, the Population Stability Index (PSI) over the training data's decile bins:

    PSI = sum over bins of (tonight_share - train_share) * ln(tonight_share / train_share)

Bins are right-closed intervals cut at the distinct training deciles (10%..90%), so a feature
with many ties (most persons have one account) gets fewer, wider bins; shares are floored at
1e-4 so that an empty bin does not divide by zero. The usual reading, used here: PSI < 0.1
stable, 0.1-0.25 moderate, **> 0.25 drifted** (``DEFAULT_THRESHOLD``): the scorer logs a
warning naming the feature and returns it in its summary. The scores are still written; an
operator decides whether to retrain (``retrain=True``).
"""
from __future__ import annotations

import numpy as np

DEFAULT_THRESHOLD = 0.25
QUANTILES = tuple(q / 10 for q in range(1, 10))
FLOOR = 1e-4


def _shares(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(edges, x, side="left")  # bin i: edges[i-1] < x <= edges[i]
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    return counts / max(len(x), 1)


def reference(X: np.ndarray, names: tuple[str, ...]) -> dict:
    """What the drift check needs to remember of the training data (JSON-able)."""
    out: dict = {"rows": int(X.shape[0]), "features": {}}
    for j, name in enumerate(names):
        col = X[:, j]
        edges = np.unique(np.quantile(col, QUANTILES)) if len(col) else np.array([0.0])
        out["features"][name] = {
            "edges": edges.tolist(),
            "shares": _shares(col, edges).tolist(),
            "mean": float(col.mean()) if len(col) else 0.0,
            "std": float(col.std()) if len(col) else 0.0,
        }
    return out


def psi(ref: dict, X: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    out = {}
    for j, name in enumerate(names):
        r = ref["features"][name]
        edges = np.asarray(r["edges"], dtype=float)
        p = np.maximum(np.asarray(r["shares"], dtype=float), FLOOR)
        q = np.maximum(_shares(X[:, j], edges), FLOOR)
        out[name] = float(np.sum((q - p) * np.log(q / p)))
    return out


def check(ref: dict, X: np.ndarray, names: tuple[str, ...], threshold: float = DEFAULT_THRESHOLD) -> dict:
    values = psi(ref, X, names)
    drifted = sorted((n for n, v in values.items() if v > threshold), key=lambda n: -values[n])
    return {
        "method": "psi",
        "threshold": threshold,
        "psi": {n: round(v, 4) for n, v in values.items()},
        "max_psi": round(max(values.values()), 4) if values else 0.0,
        "drifted_features": drifted,
        "warning": bool(drifted),
    }
