"""Compile a parsed :class:`~rules.catalog.Rule` into one DuckDB statement and its bindings.

A rule's ``query`` (written by its kind, rules/kinds.py, or by hand) returns the hit columns of
rule_hits' contract (:func:`rules.grammar.hit_columns`, from sql/warehouse/rule_hits.sql) plus whatever its evidence
template names. The compiler wraps it: it adds the rule's identity, casts the contract types,
renders the evidence template as ``concat(...)`` whose literal pieces are bound parameters, and,
when the rule has overrides, keeps only the rows of one *scope*.

Parameters and overrides (decision): every parameter is a DuckDB named parameter ``$name``;
parameter values are never pasted into SQL text. What the YAML says as SQL (a kind's ``where``, ``fields``,
``per``; a comparison level's threshold; a ``query:``) is the rule's own SQL, reviewed as code: rules are
written by the project's analysts, not taken from input. A rule
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

from data_contracts import warehouse
from rules.catalog import Rule
from rules.grammar import HIT_TABLE, IDENTITY, template_parts

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
            **{f"sys_ev_{i}": piece for i, piece in enumerate(_pieces(self.rule.evidence))}, **self.rule.texts,
        }
        if len(self.scopes) > 1:
            values["sys_scope"] = scope.key
            values["sys_override_keys"] = [s.key for s in self.scopes[1:]]
        used = set(self.rule.used_params()) | {k for k in values if k.startswith("sys_")}
        return {k: v for k, v in values.items() if k in used}


def _pieces(template: str) -> list[str]:
    """Literal text of a template, in the order :func:`evidence_sql` binds it ($sys_ev_0, ...)."""
    out = []
    for part in template_parts(template):
        if part[0] == "text":
            out.append(part[1])
        elif part[0] == "group":
            out += [x for kind, x in part[1] if kind == "text"] + [part[2]]
    return out


def evidence_sql(template: str) -> str:
    n = iter(range(10_000))

    def pieces(parts, empty_null: bool) -> list[str]:
        return [f"$sys_ev_{next(n)}" if kind == "text" else
                (f"coalesce(CAST(h.{x} AS VARCHAR), '')" if empty_null else f"CAST(h.{x} AS VARCHAR)")
                for kind, x in parts]

    out = []
    for part in template_parts(template):
        if part[0] == "group":  # every field present: the part; else the fallback
            inner = pieces(part[1], False)
            present = " AND ".join(f"h.{x} IS NOT NULL" for kind, x in part[1] if kind == "field")
            out.append(f"CASE WHEN {present} THEN concat({', '.join(inner)}) ELSE $sys_ev_{next(n)} END")
        else:
            out += pieces([part], True)
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
    cols = []
    for col, typ in warehouse.columns(HIT_TABLE):
        if col in IDENTITY:
            cols.append(f"CAST(${IDENTITY[col]} AS {typ}) AS {col}")
        elif col == "evidence":
            cols.append(f"{evidence_sql(rule.evidence)} AS evidence")
        elif col == "finding_key":
            cols.append(f"CAST(h.{rule.finding_key} AS {typ}) AS finding_key" if rule.finding_key
                        else f"CAST(NULL AS {typ}) AS finding_key")
        else:
            cols.append(f"CAST(h.{col} AS {typ}) AS {col}")
    cols = ",\n    ".join(cols)
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
