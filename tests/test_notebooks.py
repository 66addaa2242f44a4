"""The analysts' notebooks run top to bottom against a freshly made demo warehouse (issue 8)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from casework.feedback import apply_feedback

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, warehouse: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "stored without outputs"
    os.environ["SENTINEL_WAREHOUSE"] = str(warehouse)
    try:
        NotebookClient(nb, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    finally:
        os.environ.pop("SENTINEL_WAREHOUSE", None)
    return nb


def outputs(nb, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "data" in o and mime in o["data"]]


def text(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_morning_review_shows_charts_and_top_warnings(demo_run):
    nb = execute("morning_review", demo_run["warehouse"])
    assert len(outputs(nb, "image/png")) >= 4
    assert "live warnings tonight" in text(nb)
    html = "\n".join(outputs(nb, "text/html"))
    assert "evidence" in html and "元" in html  # the top warnings with their evidence in Chinese


def test_drill_down_gathers_every_record_of_a_subject(demo_run):
    nb = execute("drill_down", demo_run["warehouse"])
    t = text(nb)
    assert "household(s)" in t and "payments" in t
    assert len(outputs(nb, "text/html")) >= 4


def test_supervisors_after_feedback(demo_run, tmp_path):
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(demo_run["warehouse"], wh)
    lists = sorted((demo_run["out"] / "lists").rglob("*.csv"))
    first = lists[0].read_bytes().decode("utf-8-sig").splitlines()
    header, row = first[0], first[1].split(",")
    returned = tmp_path / "returned.csv"
    returned.write_bytes(f"预警编号,核查结论,核查说明\n{row[0]},属实,已追回 500 元\n".encode("gb18030"))
    apply_feedback(wh, [returned])
    nb = execute("supervisors", wh)
    assert len(outputs(nb, "image/png")) >= 2
    assert "recovered 500" in text(nb)


def test_oversight_shows_the_audit_charts(demo_run):
    nb = execute("oversight", demo_run["warehouse"])
    assert len(outputs(nb, "image/png")) >= 4
    t = text(nb)
    assert "group rates" in t and "two-sided exact test" in t
    assert "no group flagged" in t  # the demo city's anomalies are planted uniformly
