"""How well the isolation-forest scorer finds the planted model_outlier persons, side by side with
a per-feature z-score baseline and random scores; plus the scorer's wall time.

    python benchmarks/model_ap.py --persons 200000            # generate, ingest, score
    python benchmarks/model_ap.py --warehouse W.duckdb --answer-key K.csv   # score an ingested city

Average precision (sklearn ``average_precision_score``) of each score for the answer key's
model_outlier subjects among all persons scored. The baseline is the largest |z| over the same
features (z = (x - mean) / std over the persons scored, 0 where std is 0); random is uniform
(seeded). The scorer is run with ``retrain=True`` into a fresh temporary model_dir on a copy of
the warehouse, so "features + fit + score" is what is timed. Run under ``/usr/bin/time -v`` with
``--warehouse`` to measure the scorer's own peak memory.
"""
from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from models import features, scorer  # noqa: E402

AS_OF = dt.date(2026, 11, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--persons", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--warehouse", help="an already ingested warehouse (skips generate and ingest)")
    p.add_argument("--answer-key", help="the answer key of that warehouse's city")
    p.add_argument("--workdir", help="where to generate (default: a temporary directory)")
    a = p.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="model-ap-"))
    try:
        if a.warehouse:
            wh, key = tmp / "w.duckdb", Path(a.answer_key)
            shutil.copy(a.warehouse, wh)
        else:
            from data_contracts.ingest import ingest
            from synthetic.city import generate

            work = Path(a.workdir) if a.workdir else tmp
            landing = work / f"city{a.persons}"
            t = time.perf_counter()
            key = Path(generate(persons=a.persons, seed=a.seed, out=landing, as_of=AS_OF))
            print(f"generated {a.persons:,} persons in {time.perf_counter() - t:.1f} s")
            wh = tmp / "w.duckdb"
            t = time.perf_counter()
            ingest(landing, wh, as_of=AS_OF)
            print(f"ingested in {time.perf_counter() - t:.1f} s")

        with duckdb.connect(str(wh)) as con:
            t = time.perf_counter()
            summary = scorer.score(con, AS_OF, 1, tmp / "models", retrain=True)
            wall = time.perf_counter() - t
            scores = pl.from_arrow(con.sql("SELECT id_number, score FROM model_scores").to_arrow_table())
            feats = features.compute(con, AS_OF)

        answer = pl.read_csv(key, infer_schema=False).filter(pl.col("category") == "model_outlier")
        df = feats.join(scores, on="id_number").with_columns(
            label=pl.col("id_number").is_in(answer["subject_id"].implode()))
        y = df["label"].to_numpy()
        X = df.select(features.FEATURE_NAMES).to_numpy()
        sd = X.std(axis=0)
        z = np.abs((X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)) * (sd > 0)
        rng = np.random.default_rng(a.seed)
        results = {
            "isolation forest": average_precision_score(y, df["score"].to_numpy()),
            "max |z| baseline": average_precision_score(y, z.max(axis=1)),
            "random": average_precision_score(y, rng.random(len(y))),
        }
        sec = summary["seconds"]
        print(f"persons scored: {summary['persons_scored']:,}; model_outlier subjects among them: {int(y.sum())} "
              f"of {answer.height} in the answer key; model_outlier hits (top {summary['top_k']}): {summary['hits']}")
        print(f"{'score':<18}{'average precision':>18}")
        for name, ap in results.items():
            print(f"{name:<18}{ap:>18.4f}")
        print(f"features + fit + score: {sec['features'] + sec['fit'] + sec['score']:.2f} s "
              f"(features {sec['features']:.2f}, fit {sec['fit']:.2f}, score {sec['score']:.2f}); "
              f"with explanations and writes {wall:.2f} s")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
