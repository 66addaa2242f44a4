"""Load the hand-written shared SQL in ``sql/``: one statement per file, named after the view or
macro it makes (``CREATE OR REPLACE VIEW|TABLE|MACRO <file stem>``). Files are created in
dependency order (a file depends on every other file whose name it mentions)."""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
CREATES = re.compile(r"^\s*CREATE\s+OR\s+REPLACE\s+(?:TEMP\s+)?(VIEW|TABLE|MACRO)\s+(\w+)", re.I | re.M)


class SqlFileError(ValueError):
    def __init__(self, file: Path, problem: str):
        super().__init__(f"{file.name}: {problem}")


def _strip_comments(text: str) -> str:
    return re.sub(r"--[^\n]*", "", text)


def read_sql_dir(sql_dir: Path | None = None) -> list[tuple[str, str]]:
    """(name, statement) in creation order."""
    d = sql_dir or SQL_DIR
    files = {f.stem: f for f in sorted(d.glob("*.sql"))}
    texts: dict[str, str] = {}
    for name, f in files.items():
        text = f.read_text(encoding="utf-8")
        body = _strip_comments(text)
        if len(duckdb.extract_statements(body)) != 1:
            raise SqlFileError(f, "expected exactly one statement")
        m = CREATES.search(body)
        if not m or m.group(2) != name:
            raise SqlFileError(f, f"expected CREATE OR REPLACE VIEW|TABLE|MACRO {name}")
        texts[name] = text.strip().rstrip(";")
    deps = {n: {o for o in files if o != n and re.search(rf"\b{o}\b", _strip_comments(t))} for n, t in texts.items()}
    order: list[str] = []
    while len(order) < len(texts):
        ready = sorted(n for n in texts if n not in order and deps[n] <= set(order))
        if not ready:
            raise SqlFileError(d / "?", f"circular references among {sorted(set(texts) - set(order))}")
        order.extend(ready)
    return [(n, texts[n]) for n in order]


def create_views(con: duckdb.DuckDBPyConnection, sql_dir: Path | None = None) -> list[str]:
    made = []
    for name, stmt in read_sql_dir(sql_dir):
        try:
            con.execute(stmt)
        except duckdb.Error as e:
            raise SqlFileError(Path(f"{name}.sql"), f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
        made.append(name)
    return made
