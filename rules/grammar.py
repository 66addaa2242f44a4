"""What every part of the rule catalog shares, below the catalog, the kinds and the compiler (so that
they import it and not each other): the refusal (:class:`RuleError`), identifiers and references
(``$param``, ``{field}``, ``[optional part]``), templates, and the hit columns every rule returns
(rule_hits' contract, sql/warehouse/rule_hits.sql)."""
from __future__ import annotations

import re
from pathlib import Path

from data_contracts import warehouse

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
PARAM_REF = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
FIELD_REF = re.compile(r"\{([^{}]*)\}")
GROUP_REF = re.compile(r"\[([^\[\]]*)\]")  # an optional part of a template: [text {field}|fallback]
COUNTY = re.compile(r"^\d{6}$")


class RuleError(ValueError):
    """A rule file the catalog refuses: names the file and the key."""

    def __init__(self, file: Path | str, key: str, problem: str):
        self.file, self.key, self.problem = str(file), key, problem
        super().__init__(f"{Path(file).name}: {key}: {problem}")


def template_parts(template: str) -> list[tuple]:
    """A template as ``("text", s)``, ``("field", name)`` and ``("group", parts, fallback)`` pieces, in order.

    ``[至 {end_date}]`` is an optional part: its text when every field in it has a value, else nothing;
    ``[至 {end_date}|在职]`` shows the fallback text instead. Groups do not nest."""
    def flat(text):
        return [("field", x) if i % 2 else ("text", x) for i, x in enumerate(FIELD_REF.split(text))]

    out, pos = [], 0
    for m in GROUP_REF.finditer(template):
        out += flat(template[pos:m.start()])
        body, _, fallback = m.group(1).partition("|")
        out.append(("group", flat(body), fallback))
        pos = m.end()
    return out + flat(template[pos:])


def check_template(file, key: str, template: str) -> None:
    for f in FIELD_REF.findall(template):
        if not IDENT.match(f):
            raise RuleError(file, key, f"{{{f}}} is not a column name")
    stripped = FIELD_REF.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise RuleError(file, key, "unbalanced brace")
    for m in GROUP_REF.finditer(template):
        if not FIELD_REF.search(m.group(1).partition("|")[0]):
            raise RuleError(file, key, f"[{m.group(1)}] names no field (an optional part shows a field when it has a value)")
    if "[" in GROUP_REF.sub("", template) or "]" in GROUP_REF.sub("", template):
        raise RuleError(file, key, "unbalanced or nested [optional part]")


# The hit columns every rule returns, with their types: rule_hits' contract (sql/warehouse/rule_hits.sql)
# between the rule's identity (before subject_type) and the compiler's evidence and finding_key.
HIT_TABLE = "rule_hits"
IDENTITY = {"batch_id": "sys_batch_id", "rule_id": "sys_rule_id", "rule_version": "sys_rule_version",
            "category": "sys_category", "severity": "sys_severity"}


def hit_columns() -> list[tuple[str, str]]:
    """(column, type) of the columns a rule's SELECT returns (subject_type .. evidence_size, no evidence)."""
    return [(c, t) for c, t in warehouse.columns(HIT_TABLE) if c not in IDENTITY and c not in ("evidence", "finding_key")]
