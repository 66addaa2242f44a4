"""What the ingest made of a batch's input, as markdown sections for the run summary.

Reads the run's record only (``landing_entries``, ``key_versions``, ``quarantine``): entry
names, extracts, counts and reasons. Never a value of a row: no ID number, name or account.
"""
from __future__ import annotations

import duckdb

from data_contracts.ids import mask_ids_in_text


def _table(header: list[str], rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # an entry's name is the operator's: masked in case it holds an ID number
    lines += ["| " + " | ".join("" if v is None else mask_ids_in_text(str(v)).replace("|", "\\|") for v in r) + " |"
              for r in rows]
    return "\n".join(lines)


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                            [table]).fetchall()[0][0])


def ingest_sections(con: duckdb.DuckDBPyConnection, batch_id: int, top_reasons: int = 20) -> list[str]:
    """Markdown sections: every landing entry with what became of it; keys re-sent and changed
    per incremental extract (when any); the commonest quarantine reasons."""
    parts: list[str] = []
    if _has(con, "landing_entries"):
        entries = con.execute(
            "SELECT entry, kind, status, reason FROM landing_entries WHERE batch_id = ? ORDER BY entry",
            [batch_id]).fetchall()
        parts += ["## Landing directory",
                  "Every entry of the landing directory: loaded, skipped as a re-delivery, or ignored (with why).",
                  _table(["entry", "kind", "status", "reason"], entries)]
    if _has(con, "key_versions"):
        versions = con.execute(
            "SELECT extract, keys_resent, keys_changed FROM key_versions WHERE batch_id = ? "
            "AND (keys_resent > 0 OR keys_changed > 0) ORDER BY extract", [batch_id]).fetchall()
        if versions:
            parts += ["## Records re-sent under a key already loaded",
                      "The earlier version stays in raw_<extract>; staging holds the new one. "
                      "Changed: the content differs from what was loaded (or between tonight's files).",
                      _table(["extract", "keys re-sent", "keys with changed content"], versions)]
    reasons = con.execute(
        "SELECT extract, reason, count(*) AS n FROM quarantine WHERE batch_id = ? GROUP BY ALL "
        "ORDER BY n DESC, extract, reason LIMIT ?", [batch_id, top_reasons]).fetchall()
    if reasons:
        parts += ["## Quarantine reasons", _table(["extract", "reason", "rows"], reasons)]
    return parts
