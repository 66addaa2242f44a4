"""What is unusual: the isolation-forest scorer (models/scorer.py)."""
from __future__ import annotations

from pathlib import Path


def default_model_dir(warehouse: Path | str) -> Path:
    """``<warehouse stem>.models/`` beside the warehouse file (``city.duckdb`` -> ``city.models/``).

    Not ``city.duckdb.models``: whatever globs the warehouse's own files (``city.duckdb*``: the
    file and its WAL) must not pick up the model directory."""
    w = Path(warehouse)
    return w.with_suffix(".models") if w.suffix else w.with_name(w.name + ".models")
