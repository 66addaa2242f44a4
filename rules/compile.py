"""Compile a parsed :class:`~rules.catalog.Rule` into one DuckDB statement and its bindings.

A rule's ``query`` returns the standard hit columns (HIT_COLUMNS) plus whatever its evidence
template names. The compiler wraps it: it adds the rule's identity, casts the contract types,
renders the evidence template as ``concat(...)`` whose literal pieces are bound parameters, and,
when the rule has overrides, keeps only the rows of one *scope*.

Parameters and overrides (decision): every parameter is a DuckDB named parameter ``$name``;
nothing from the YAML is pasted into SQL text except column names (checked identifiers). A rule
without overrides runs once with its defaults. A rule with overrides runs once per scope
(``*|*`` for the defaults, then ``county|program``, ``county|*`` or ``*|program`` per override)
with that scope's merged parameters (defaults, then ``*|program``, ``county|*`` and
``county|program`` overrides that contain it); each run keeps only the output rows whose
(county_code, program_code) resolve to its scope, the most specific override winning. The SQL
text is the same for every scope: only the bindings differ.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from rules.catalog import FIELD_REF, Rule

HIT_COLUMNS = ("subject_type", "subject_id", "id_number", "name", "program_code", "county_code", "township",
               "village", "first_period", "last_period", "amount_at_risk", "evidence_size")

RULE_HITS_DDL = """CREATE OR REPLACE TABLE rule_hits (
    batch_id BIGINT, rule_id VARCHAR, rule_version INTEGER, category VARCHAR, severity VARCHAR,
    subject_type VARCHAR, subject_id VARCHAR, id_number VARCHAR, name VARCHAR, program_code VARCHAR,
    county_code VARCHAR, township VARCHAR, village VARCHAR, first_period VARCHAR, last_period VARCHAR,
    amount_at_risk DECIMAL(18,2), evidence VARCHAR, evidence_size INTEGER, finding_key VARCHAR)"""
RULE_RUNS_DDL = """CREATE OR REPLACE TABLE rule_runs (
    batch_id BIGINT, rule_id VARCHAR, rule_version INTEGER, category VARCHAR, status VARCHAR,
    reason VARCHAR, hits BIGINT, seconds DOUBLE)"""


@dataclass(frozen=True)
class Scope:
    key: str  # "*|*", "340521|GAOLING", ...
    params: dict


@dataclass(frozen=True)
class Compiled:
    rule: Rule
    sql: str
    scopes: tuple[Scope, ...]

    def bindings(self, scope: Scope, batch_id: int, as_of: dt.date) -> dict:
        """The named parameters of one run (only those the SQL uses: DuckDB refuses extras)."""
        values = {
            **scope.params, "as_of": as_of, "programs": list(self.rule.programs),
            "sys_batch_id": batch_id, "sys_rule_id": self.rule.id, "sys_rule_version": self.rule.version,
            "sys_category": self.rule.category, "sys_severity": self.rule.severity,
            **{f"sys_ev_{i}": piece for i, piece in enumerate(_pieces(self.rule.evidence))},
        }
        if len(self.scopes) > 1:
            values["sys_scope"] = scope.key
            values["sys_override_keys"] = [s.key for s in self.scopes[1:]]
        used = set(self.rule.used_params()) | {k for k in values if k.startswith("sys_")}
        return {k: v for k, v in values.items() if k in used}


def _pieces(template: str) -> list[str]:
    """Literal text between the {fields} of a template."""
    return FIELD_REF.split(template)[0::2]


def evidence_sql(template: str) -> str:
    parts = FIELD_REF.split(template)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(f"$sys_ev_{i // 2}")
        else:
            out.append(f"coalesce(CAST(h.{part} AS VARCHAR), '')")
    return "concat(" + ", ".join(out) + ")"


def scopes(rule: Rule) -> tuple[Scope, ...]:
    """The defaults scope first, then one per override, each with its merged parameters."""
    out = [Scope("*|*", dict(rule.params))]
    for o in rule.overrides:
        merged = dict(rule.params)
        for level in (("*", o.program or "*"), (o.county or "*", "*"), (o.county or "*", o.program or "*")):
            for x in rule.overrides:
                if (x.county or "*", x.program or "*") == level and level != ("*", "*"):
                    merged.update(x.params)
        out.append(Scope(o.scope_key, merged))
    return tuple(out)


def compile_rule(rule: Rule) -> Compiled:
    sc = scopes(rule)
    cols = ",\n    ".join([
        "CAST($sys_batch_id AS BIGINT) AS batch_id", "CAST($sys_rule_id AS VARCHAR) AS rule_id",
        "CAST($sys_rule_version AS INTEGER) AS rule_version", "CAST($sys_category AS VARCHAR) AS category",
        "CAST($sys_severity AS VARCHAR) AS severity",
        "CAST(h.subject_type AS VARCHAR) AS subject_type", "CAST(h.subject_id AS VARCHAR) AS subject_id",
        "CAST(h.id_number AS VARCHAR) AS id_number", "CAST(h.name AS VARCHAR) AS name",
        "CAST(h.program_code AS VARCHAR) AS program_code", "CAST(h.county_code AS VARCHAR) AS county_code",
        "CAST(h.township AS VARCHAR) AS township", "CAST(h.village AS VARCHAR) AS village",
        "CAST(h.first_period AS VARCHAR) AS first_period", "CAST(h.last_period AS VARCHAR) AS last_period",
        "CAST(h.amount_at_risk AS DECIMAL(18,2)) AS amount_at_risk",
        f"{evidence_sql(rule.evidence)} AS evidence",
        "CAST(h.evidence_size AS INTEGER) AS evidence_size",
        f"CAST(h.{rule.finding_key} AS VARCHAR) AS finding_key" if rule.finding_key
        else "CAST(NULL AS VARCHAR) AS finding_key",
    ])
    where = ""
    if len(sc) > 1:
        c, p = "coalesce(h.county_code, '')", "coalesce(h.program_code, '')"
        resolved = (f"CASE WHEN list_contains($sys_override_keys, {c} || '|' || {p}) THEN {c} || '|' || {p}\n"
                    f"         WHEN list_contains($sys_override_keys, {c} || '|*') THEN {c} || '|*'\n"
                    f"         WHEN list_contains($sys_override_keys, '*|' || {p}) THEN '*|' || {p}\n"
                    f"         ELSE '*|*' END")
        where = f"\nWHERE {resolved} = $sys_scope"
    body = "\n".join("  " + line if line.strip() else "" for line in rule.query.splitlines())
    sql = (f"-- generated by rules.compile from rules/{rule.file.name} (version {rule.version}); do not edit\n"
           f"WITH h AS (\n{body}\n)\nSELECT\n    {cols}\nFROM h{where}")
    return Compiled(rule, sql, sc)
