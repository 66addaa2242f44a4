"""A fresh Prefect home starts from the Python environment's copy of a fresh Prefect database
(flows/prefect_api.py): the first `sentinel run` in a new home keeps its server's database as the
template, the next new home is a copy of it, and a broken template is replaced, not used."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import AS_OF

SENTINEL = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _run(landing: Path, site: Path, templates: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120", SENTINEL_PREFECT_TEMPLATES=str(templates),
               **extra)
    r = subprocess.run([*SENTINEL, "run", "--input", str(landing), "--warehouse", str(site / "w.duckdb"),
                        "--out", str(site / "out"), "--as-of", AS_OF.isoformat()],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return r


def _block_type_ids(db: Path) -> set[str]:
    """Prefect gives every block type it registers a random id: equal ids mean one database copied."""
    with sqlite3.connect(db) as con:
        return {i for (i,) in con.execute("SELECT id FROM block_type")}


def _completed_runs(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT count(*) FROM flow_run WHERE state_type = 'COMPLETED'").fetchone()[0]


def test_a_fresh_prefect_home_starts_from_a_copy_of_the_first_ones_database_and_a_broken_copy_is_replaced(minimal_landing, tmp_path):
    templates = tmp_path / "templates"
    _run(minimal_landing, tmp_path / "a", templates)
    (template,) = templates.glob("prefect-*.db")
    with sqlite3.connect(template) as con:
        assert len(con.execute("SELECT version_num FROM alembic_version").fetchall()) == 1
        assert con.execute("SELECT count(*) FROM block_type").fetchone()[0] > 0
        # the copy was taken before the run: no flow, run, log or event of the first home in it
        for table in ("flow", "flow_run", "task_run", "log", "events"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    first = tmp_path / "a" / ".prefect" / "prefect.db"
    assert _completed_runs(first) == 1
    ids = _block_type_ids(template)
    assert ids == _block_type_ids(first)

    _run(minimal_landing, tmp_path / "b", templates)
    second = tmp_path / "b" / ".prefect" / "prefect.db"
    assert _completed_runs(second) == 1
    assert _block_type_ids(second) == ids  # a copy of the template, not built anew

    # a second night in that home: its database is left as it is (no copy over it)
    _run(minimal_landing, tmp_path / "b", templates)
    assert _completed_runs(second) == 2

    # a template that is not a database is not used: the next new home's database replaces it
    template.write_bytes(b"not a database\n" * 100)
    _run(minimal_landing, tmp_path / "c", templates)
    third = tmp_path / "c" / ".prefect" / "prefect.db"
    assert _completed_runs(third) == 1
    assert _block_type_ids(template) == _block_type_ids(third) != ids


def test_only_prefects_default_database_in_a_home_without_one_is_made_from_the_template(tmp_path, monkeypatch):
    from flows import prefect_api

    for key in [k for k in os.environ if k.startswith("PREFECT_")]:
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    assert prefect_api._default_database(home) == home / "prefect.db"
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    assert prefect_api._default_database(home) is None
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")
    (home / "profiles.toml").write_text('active = "site"\n[profiles.site]\n'
                                        'PREFECT_API_DATABASE_CONNECTION_URL = "postgresql+asyncpg://db/prefect"\n')
    monkeypatch.setenv("PREFECT_HOME", str(home))
    assert prefect_api._default_database(home) is None


def test_a_template_folder_that_cannot_be_made_never_fails_the_batch(minimal_landing, tmp_path):
    """The template is an optimisation: where it cannot be kept (here its folder's path is a file), the
    new home's database is built as Prefect builds it and the night runs."""
    not_a_folder = tmp_path / "templates"
    not_a_folder.write_text("a file\n")
    r = _run(minimal_landing, tmp_path / "a", not_a_folder)
    assert r.stderr == "" and len(r.stdout.splitlines()) == 1
    assert _completed_runs(tmp_path / "a" / ".prefect" / "prefect.db") == 1
    assert not_a_folder.read_text() == "a file\n"
