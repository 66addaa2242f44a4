"""`sentinel explain WARNING_ID`: everything the warehouse holds on why one warning exists, in plain
Chinese with the English beside it. What a verifier shows a resident who asks why their payment
is being checked.

Sections: the warning (category, status, periods, amount, evidence); the rule(s) that raised it,
their version and the parameter values recorded on the warning (casework/lifecycle.py), with the
catalog's title and description; the records behind the evidence (every staging row whose key the
evidence names, and the subject's own records in the evidence's periods) with the file, line and
batch they were loaded from (lineage columns ``_file``, ``_line``, ``_batch_id``); the model's
score and its three most unusual features when the model raised or scored the person; the
history of its statuses (warning_history) and the verifiers' conclusions (dispositions).

ID numbers: the person concerned's is printed in full; with ``mask_ids`` every other ID number
is masked, first 6 and last 4 kept (``data_contracts.ids.mask_ids_in_text``, without its long-digit extra).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import polars as pl

from data_contracts.extracts import EXTRACTS
from data_contracts.ids import mask_ids_in_text
from data_contracts.policy import CATEGORIES, PROGRAMS, SEVERITY_ZH

MAX_ROWS = 30
STATUS_ZH = {"new": "新预警", "open": "持续预警", "resolved": "已消除（证据不再出现）", "confirmed": "核查属实",
             "cleared": "核查不属实", "rectified": "已整改"}
# staging tables and the key columns the evidence may name (equality lookups, no scan of text)
KEYED = {
    "stg_payments": ("payment_id",),
    "stg_training_claims": ("claim_id", "certificate_number"),
    "stg_service_orders": ("order_id",),
    "stg_vehicle_registration": ("plate_number",),
    "stg_property_registration": ("certificate_number",),
    "stg_death_records": ("id_number",),
    "stg_household_registration": ("id_number", "household_id"),
    "stg_public_servants": ("id_number",),
}
# each staging table as the evidence names it: the extract's Chinese title (data_contracts/extracts.py) and its name
TABLE_ZH = {f"stg_{e.name}": f"{e.title} {e.name.replace('_', ' ')}" for e in EXTRACTS.values()}
TOKEN = re.compile(r"[\u4e00-\u9fff][A-Z][A-Z0-9]{5}|[A-Z]*\d[\dA-Z]{5,}")


class UnknownWarning(LookupError):
    pass


def _masker(person: str | None, mask: bool):
    """Text -> text with every ID number but the person concerned's masked (when ``mask``)."""
    if not mask:
        return lambda text: text
    return lambda text: mask_ids_in_text(text, keep=person, long_digits=False)  # the project's ID-like values


def _tables(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}


def _frame(con, q: str, params=None) -> pl.DataFrame:
    return pl.from_arrow(con.sql(q, params=params).to_arrow_table())


def _fmt_rows(df: pl.DataFrame, m) -> list[str]:
    out = []
    for row in df.iter_rows(named=True):
        file, line = row.pop("_file"), row.pop("_line")
        # a Parquet file has rows, not lines: its _line is the row's number + 1 (the header's place)
        where = f"第 {line - 1} 条 row" if file.lower().endswith(".parquet") else f"第 {line} 行 line"
        lineage = f"文件 file {file}，{where}，批次 batch {row.pop('_batch_id')}"
        fields = "，".join(f"{k}={v}" for k, v in row.items() if v is not None and not k.endswith("_valid"))
        out.append(m(f"    - {lineage}: {fields}"))
    return out


def records(con, w: dict) -> dict[str, pl.DataFrame]:
    """Staging rows behind the evidence: rows whose key the evidence names, and the subject's payments
    in the evidence's periods when the evidence names none."""
    tokens = set(TOKEN.findall(w["evidence"] or ""))
    tokens |= {t for t in (w["id_number"], w["subject_id"]) if t}
    tokens = sorted(tokens)
    have = _tables(con)
    out: dict[str, pl.DataFrame] = {}
    for table, cols in KEYED.items():
        if table not in have:
            continue
        where = " OR ".join(f"{c} IN (SELECT unnest($tokens::VARCHAR[]))" for c in cols)
        df = _frame(con, f"SELECT * FROM {table} WHERE {where} ORDER BY _file, _line LIMIT {MAX_ROWS}",
                    {"tokens": tokens})
        if table == "stg_payments" and df.height == 0 and w["first_period"]:
            df = _frame(con, f"""SELECT * FROM stg_payments
                WHERE (id_number = $person OR bank_account = $subject)
                  AND ($program IS NULL OR program_code = $program)
                  AND period BETWEEN $p0 AND $p1 ORDER BY period, payment_id LIMIT {MAX_ROWS}""",
                        {"person": w["id_number"], "subject": w["subject_id"], "program": w["program_code"],
                         "p0": w["first_period"], "p1": w["last_period"]})
        if df.height:
            out[table] = df
    return out


def explain(con: duckdb.DuckDBPyConnection, warning_id: str, mask_ids: bool = False,
            rules_dir: Path | str | None = None) -> str:
    rows = _frame(con, "SELECT * FROM warnings WHERE warning_id = $id", {"id": warning_id.strip().upper()})
    if rows.height == 0:
        raise UnknownWarning(f"no warning {warning_id!r} in this warehouse")
    w = rows.row(0, named=True)
    person = w["id_number"] if w["subject_type"] in ("person", "household") else None
    m = _masker(person, mask_ids)
    cat_zh = CATEGORIES.get(w["category"], w["category"])
    prog = w["program_code"]
    L = [
        f"预警 Warning {w['warning_id']}",
        f"  类型 category: {cat_zh}（{w['category']}）；风险等级 severity: {SEVERITY_ZH.get(w['severity'])}（{w['severity']}）；"
        f"风险分值 score: {w['score']}",
        f"  状态 status: {STATUS_ZH.get(w['status'], w['status'])}（{w['status']}）；首次预警 first raised "
        f"{w['first_seen']}，最近一次 last raised {w['last_seen']}（批次 batch {w.get('raised_batch_id')}）",
        m(f"  对象 subject: {w['subject_type']} {w['subject_id']}；当事人 person concerned: {w['name'] or ''} "
          f"{w['id_number'] or '（无 none）'}"),
        f"  项目 program: {PROGRAMS.get(prog, prog) if prog else '跨项目 several'}（{prog or '-'}）；地点 place: "
        f"{w['county_code']} {w['township'] or ''} {w['village'] or ''}",
        f"  涉及期间 periods: {w['first_period']} 至 to {w['last_period']}；涉及金额 amount at risk: {w['amount_at_risk']} 元 yuan；"
        f"依据记录数 records: {w['evidence_size']}",
        m(f"  预警依据 evidence（中文原文 as the verifier reads it）: {w['evidence']}"),
        "",
        "规则 Rules (why it was raised)",
    ]
    L += _rules(w, rules_dir)
    L += ["", "依据记录 Records behind the evidence (staging rows, with the file, line and batch they came from)"]
    recs = records(con, w)
    if not recs:
        L.append("  （未找到 none found: the records may have been replaced by a later delivery）")
    for table, df in recs.items():
        L.append(f"  {TABLE_ZH.get(table, table)}: {df.height} 条 rows" + ("（仅列前 first %d）" % MAX_ROWS
                                                                          if df.height >= MAX_ROWS else ""))
        L += _fmt_rows(df, m)
    L += ["", "模型 Model (isolation forest; a lead, not proof)"]
    L += _model(con, w, m)
    L += ["", "历史 History (statuses by batch; verifiers' conclusions)"]
    L += _history(con, w, m)
    return "\n".join(L) + "\n"


def _rules(w: dict, rules_dir) -> list[str]:
    from rules.catalog import load_catalog

    catalog = {r.id: r for r in load_catalog(rules_dir)}
    try:
        params = json.loads(w.get("rule_params") or "{}")
    except json.JSONDecodeError:
        params = {}
    out = []
    for ref in (w["rule_id"] or "").split(","):
        rid, _, ver = ref.partition("@v")
        rec = params.get(ref)
        if rid == "model_outlier":
            out.append(f"  - {ref}: 孤立森林模型 v{ver}（isolation-forest model version {ver}）；"
                       "参数见模型卡 parameters: see the model card (MODEL_CARD.md beside the kept model)")
            continue
        r = catalog.get(rid)
        out.append(f"  - {ref}: " + (f"{r.title['zh']}（{r.title['en']}）" if r else "（不在当前规则目录 not in the current catalog）"))
        if r:
            out.append(f"      说明: {r.description['zh']}")
            out.append(f"      Description: {r.description['en']}")
            if str(r.version) != ver:
                out.append(f"      注意 note: 当前规则目录为 v{r.version}，本预警由 v{ver} 产生 (the catalog now holds "
                           f"version {r.version}; this warning was raised by version {ver})")
        if rec:
            values = "，".join(f"{k}={v}" for k, v in rec["params"].items()) or "无 none"
            out.append(f"      参数 parameters（适用范围 scope {rec['scope']}）: {values}")
        else:
            out.append("      参数 parameters: 未记录 not recorded (a warning raised before issue 16)")
    return out


def _model(con, w: dict, m) -> list[str]:
    if not w["id_number"] or "model_scores" not in _tables(con):
        return ["  无 none"]
    df = _frame(con, "SELECT batch_id, score, explanation FROM model_scores WHERE id_number = $id",
                {"id": w["id_number"]})
    if df.height == 0:
        return ["  当事人未被模型评分（不在评分窗口内） the person was not scored (not paid in the scoring window)"]
    r = df.row(0, named=True)
    out = [f"  异常分 score {r['score']:.3f}（批次 batch {r['batch_id']}；0..1，约 0.5 及以下为常见 about 0.5 or "
           "below is ordinary）"]
    out.append(m(f"  最不寻常的三项特征 three most unusual features: {r['explanation']}"))
    if w["category"] == "model_outlier":
        out.append("  （中文说明见上方预警依据 the Chinese explanation is in the evidence above）")
    return out


def _history(con, w: dict, m) -> list[str]:
    h = _frame(con, """SELECT batch_id, as_of, status, amount_at_risk, last_period, evidence_size, source, file
                       FROM warning_history WHERE warning_id = $id ORDER BY as_of, batch_id""",
               {"id": w["warning_id"]})
    out = [f"  - {r['as_of']} 批次 batch {r['batch_id']}: {STATUS_ZH.get(r['status'], r['status'])}（{r['status']}），"
           f"金额 amount {r['amount_at_risk']}，至 to {r['last_period']}，记录 records {r['evidence_size']}"
           + (f"，来源 source {r['source']} {r['file'] or ''}" if r["source"] != "batch" else "")
           for r in h.iter_rows(named=True)]
    if "dispositions" in _tables(con):
        d = _frame(con, """SELECT recorded_at, conclusion, status, note, amount_reported, returned_by, file, line
                           FROM dispositions WHERE warning_id = $id ORDER BY recorded_at, line""",
                   {"id": w["warning_id"]})
        for r in d.iter_rows(named=True):
            out.append(m(f"  - 核查结论 conclusion {r['recorded_at']}: {r['conclusion']}（{r['status']}）"
                         f"{'，说明 note: ' + r['note'] if r['note'] else ''}"
                         f"{'，报告金额 amount reported ' + str(r['amount_reported']) if r['amount_reported'] is not None else ''}"
                         f"；退回 returned by {r['returned_by']}，文件 file {r['file']} 第 {r['line']} 行 line"))
        if d.height == 0:
            out.append("  - 尚无核查结论 no conclusion returned yet")
    return out


def explain_warehouse(warehouse: Path | str, warning_id: str, mask_ids: bool = False, **kw) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute("SET enable_progress_bar=false").fetchall()
        return explain(con, warning_id, mask_ids=mask_ids, **kw)
