"""Parse the rule catalog: one YAML file per rule in ``rules/`` (file name = rule id).

This module only turns YAML into typed :class:`Rule` objects and refuses anything doubtful,
loudly, naming the file and the key: an unknown key, an unknown category, severity, program or
extract, a duplicate id, a file name that is not the id, a parameter the query uses but does not
declare (or declares but never uses), an override of an undeclared parameter. Turning a rule into
SQL is :mod:`rules.compile`; running it is :mod:`rules.execute`.

The shape of a rule file::

    id: deceased_paid                # = file name
    version: 1
    category: deceased_paid          # one of POLICY.md's categories
    severity: high                   # high | medium | low
    title: {zh: ..., en: ...}
    description: {zh: ..., en: ...}
    programs: [GAOLING, ...]         # bound as $programs
    requires: [payments]             # extracts; the rule is skipped if one was not delivered
    params:                          # defaults; each bound as $name (never pasted into SQL)
      grace_months: 0
    overrides:                       # optional: per county and/or per program
      - {county: "340521", program: GAOLING, params: {grace_months: 1}}
    evidence: "死亡日期 {death_date} ..."   # {column} of the query's output; [至 {end_date}|在职]: an optional
                                     # part, shown when its fields have values (else the text after |)
    incremental: person              # optional (person, household, account): each hit is its subject's own
                                     # records (rules/incremental.py)
    finding_key: other_id            # optional: a column telling apart several findings of one subject
                                     # (one warning each), e.g. each pair of duplicate_identity
    kind: condition                  # a kind (rules/kinds.py) and its keys, which say only the intent:
    records: payments
    where: p.death_date IS NOT NULL AND p.period > ...
    fields: {death_date: any_value(p.death_date)}
    # or, where no kind fits (say why in a comment), the escape hatch:
    query: |                         # SELECT returning the standard hit columns (see compile.py)
      SELECT ...

A rule's test cases are ``<id>.cases.yaml`` beside it (tests/test_rules_cases.py runs them all).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data_contracts import dialect, policy
from data_contracts.warehouse import SQL_ROOT
from data_contracts.extracts import EXTRACTS
from rules.grammar import COUNTY, IDENT, PARAM_REF, RuleError, check_template
from rules.kinds import KINDS

RULES_DIR = Path(__file__).resolve().parent

CATEGORIES = tuple(policy.CATEGORIES)
SEVERITIES = tuple(policy.SEVERITIES)
PROGRAMS = tuple(policy.PROGRAMS)
# names the executor binds itself; a rule may use them but not declare them
RESERVED_PARAMS = ("as_of", "programs")

REQUIRED_KEYS = ("id", "version", "category", "severity", "title", "description", "programs", "requires",
                 "params", "evidence")
OPTIONAL_KEYS = ("overrides", "finding_key", "query", "kind", "incremental")
# incremental: <grain> -- each of the rule's hits is its subject's own records (a person's, a household's,
# an account's; see rules/incremental.py); it may read only the views that can be restricted to the
# changed subjects of that grain: sql/incremental/<grain>_<view>.sql
GRAINS = ("person", "household", "account")  # each also the subject_type of its rules' hits
GRAIN_VIEWS = {g: tuple(sorted(f.stem.removeprefix(f"{g}_") for f in (SQL_ROOT / "incremental").glob(f"{g}_v_*.sql")))
               for g in GRAINS}
CASES_SUFFIX = ".cases.yaml"  # a rule's test cases, beside it
OVERRIDE_KEYS = ("county", "program", "params")
TEXT_KEYS = ("zh", "en")
@dataclass(frozen=True)
class Override:
    county: str | None
    program: str | None
    params: dict

    @property
    def scope_key(self) -> str:
        return f"{self.county or '*'}|{self.program or '*'}"


@dataclass(frozen=True)
class Rule:
    id: str
    version: int
    category: str
    severity: str
    title: dict
    description: dict
    programs: tuple[str, ...]
    requires: tuple[str, ...]
    params: dict
    evidence: str
    query: str
    overrides: tuple[Override, ...] = ()
    finding_key: str | None = None
    kind: str = "query"
    incremental: str | None = None  # a grain (GRAINS): recomputed only for the subjects tonight's rows touch
    block_on: tuple[str, ...] = ()  # a pair's block (kind pair): what rules/incremental.py restricts its records by
    texts: dict = field(default_factory=dict)  # literal text the kind's SQL binds ($sys_...): list pieces, labels
    file: Path = field(default=Path("."), compare=False)

    def used_params(self) -> list[str]:
        """Names the query binds, in order of first use."""
        return list(dict.fromkeys(PARAM_REF.findall(self.query)))


def _text(file, key, value) -> dict:
    if not isinstance(value, dict):
        raise RuleError(file, key, "expected a mapping with zh and en")
    unknown = set(value) - set(TEXT_KEYS)
    if unknown:
        raise RuleError(file, f"{key}.{sorted(unknown)[0]}", "unknown key (expected zh, en)")
    for lang in TEXT_KEYS:
        if not isinstance(value.get(lang), str) or not value[lang].strip():
            raise RuleError(file, f"{key}.{lang}", "missing or empty text")
    return dict(value)


def _param_value(file, key, value):
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return value
    if isinstance(value, list) and value and all(isinstance(v, scalar) for v in value) \
            and len({type(v) for v in value}) == 1:
        return list(value)
    raise RuleError(file, key, "a parameter is a scalar or a non-empty list of scalars of one type")


def _names(file, key, value, allowed, what) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise RuleError(file, key, f"expected a non-empty list of {what}")
    for i, v in enumerate(value):
        if v not in allowed:
            raise RuleError(file, f"{key}[{i}]", f"unknown {what[:-1]} {v!r}")
    if len(set(value)) != len(value):
        raise RuleError(file, key, "listed twice")
    return tuple(value)


def parse_rule(file: Path) -> Rule:
    """One rule file to a :class:`Rule`, or :class:`RuleError`."""
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(yaml)"
        raise RuleError(file, where, f"not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(doc, dict):
        raise RuleError(file, "(top)", "expected a mapping of keys")
    kind = doc.get("kind", "query")
    if kind not in KINDS and kind != "query":
        raise RuleError(file, "kind", f"unknown kind {kind!r} (one of {', '.join(KINDS)}, or a query)")
    kind_keys = KINDS[kind][0] if kind in KINDS else ()
    for k in doc:
        if k not in REQUIRED_KEYS and k not in OPTIONAL_KEYS and k not in kind_keys:
            raise RuleError(file, str(k), "unknown key" if kind == "query" else f"unknown key for kind {kind}")
    for k in REQUIRED_KEYS:
        if k not in doc:
            raise RuleError(file, k, "missing key")
    if ("query" in doc) == ("kind" in doc):
        raise RuleError(file, "query", "a rule has a kind, or a query (the escape hatch), not both" if "kind" in doc
                        else "missing key (or a kind)")
    rid = doc["id"]
    if not isinstance(rid, str) or not IDENT.match(rid):
        raise RuleError(file, "id", "expected a lower-case identifier")
    if rid != file.stem:
        raise RuleError(file, "id", f"{rid!r} differs from the file name {file.stem!r}")
    if not isinstance(doc["version"], int) or isinstance(doc["version"], bool) or doc["version"] < 1:
        raise RuleError(file, "version", "expected a positive integer")
    if doc["category"] not in CATEGORIES:
        raise RuleError(file, "category", f"unknown category {doc['category']!r}")
    if doc["category"] == "model_outlier":
        raise RuleError(file, "category", "model_outlier is raised by the scorer, not by a rule")
    if doc["severity"] not in SEVERITIES:
        raise RuleError(file, "severity", f"unknown severity {doc['severity']!r} (high, medium, low)")
    title = _text(file, "title", doc["title"])
    description = _text(file, "description", doc["description"])
    programs = _names(file, "programs", doc["programs"], PROGRAMS, "programs")
    requires = _names(file, "requires", doc["requires"], tuple(EXTRACTS), "extracts")

    params = doc["params"] or {}
    if not isinstance(params, dict):
        raise RuleError(file, "params", "expected a mapping name: default")
    for name, value in params.items():
        if not isinstance(name, str) or not IDENT.match(name):
            raise RuleError(file, f"params.{name}", "a parameter name is a lower-case identifier")
        if name in RESERVED_PARAMS or name.startswith("sys_"):
            raise RuleError(file, f"params.{name}", "reserved: bound by the executor")
        _param_value(file, f"params.{name}", value)

    texts: dict = {}
    query = doc["query"] if kind == "query" else KINDS[kind][1](file, doc, params, texts)
    if not isinstance(query, str) or not query.strip():
        raise RuleError(file, "query", "expected the rule's SELECT")
    if ";" in query:
        raise RuleError(file, "query", "one SELECT, no ';'")
    try:  # one source, two engines: only what both run alike (data_contracts/dialect.py)
        dialect.check(query)
    except dialect.NotPortable as e:
        raise RuleError(file, "query" if kind == "query" else kind, f"not portable to Spark: {e}") from None
    used = [n for n in dict.fromkeys(PARAM_REF.findall(query)) if not n.startswith("sys_")]  # sys_: the compiler's
    for name in used:
        if name not in params and name not in RESERVED_PARAMS:
            raise RuleError(file, f"params.{name}", "used by the query ($" + name + ") but not declared")
    for name in params:
        if name not in used:
            raise RuleError(file, f"params.{name}", "declared but the query never uses it")

    overrides = []
    for i, o in enumerate(doc.get("overrides") or []):
        key = f"overrides[{i}]"
        if not isinstance(o, dict):
            raise RuleError(file, key, "expected a mapping with county and/or program, and params")
        for k in o:
            if k not in OVERRIDE_KEYS:
                raise RuleError(file, f"{key}.{k}", "unknown key (county, program, params)")
        county, program = o.get("county"), o.get("program")
        if county is None and program is None:
            raise RuleError(file, key, "an override names a county, a program or both")
        if county is not None and not (isinstance(county, str) and COUNTY.match(county)):
            raise RuleError(file, f"{key}.county", "expected a 6-digit county code in quotes")
        if program is not None and program not in programs:
            raise RuleError(file, f"{key}.program", f"{program!r} is not one of the rule's programs")
        op = o.get("params")
        if not isinstance(op, dict) or not op:
            raise RuleError(file, f"{key}.params", "expected a non-empty mapping")
        for name, value in op.items():
            if name not in params:
                raise RuleError(file, f"{key}.params.{name}", "not a declared parameter")
            _param_value(file, f"{key}.params.{name}", value)
        ov = Override(county, program, dict(op))
        if any(x.scope_key == ov.scope_key for x in overrides):
            raise RuleError(file, key, f"a second override for {ov.scope_key}")
        overrides.append(ov)

    evidence = doc["evidence"]
    if not isinstance(evidence, str) or not evidence.strip():
        raise RuleError(file, "evidence", "expected a template")
    check_template(file, "evidence", evidence)
    finding_key = doc.get("finding_key")
    if finding_key is not None and not (isinstance(finding_key, str) and IDENT.match(finding_key)):
        raise RuleError(file, "finding_key", f"{finding_key!r} is not a column name")
    incremental = doc.get("incremental")
    if incremental is not None:
        _check_incremental(file, incremental, query, kind)
    return Rule(id=rid, version=doc["version"], category=doc["category"], severity=doc["severity"], title=title,
                description=description, programs=programs, requires=requires, params=dict(params),
                evidence=evidence, query=query.strip(), overrides=tuple(overrides), finding_key=finding_key,
                kind=kind, texts=texts, file=file, incremental=incremental,
                block_on=tuple(doc["block_on"]) if kind == "pair" else ())


def _check_incremental(file: Path, value, query: str, kind: str) -> None:
    """``incremental: <grain>`` is a claim the author makes (each hit's evidence is its subject's own
    records); what can be checked is checked: subjects of that grain, only views keyed by it, no batch
    date, no pair."""
    if value not in GRAINS:
        raise RuleError(file, "incremental", f"{value!r}: the incremental grains are {', '.join(GRAINS)}")
    if kind == "pair":
        raise RuleError(file, "incremental", "a pair compares two subjects: it is recomputed whole")
    types = set(re.findall(r"'(\w+)'\s+AS\s+subject_type", query, re.I))
    if types != {value}:
        raise RuleError(file, "incremental", f"{value}, but the rule's subjects are {', '.join(sorted(types)) or 'not named'}")
    if re.search(r"\$as_of\b", query):
        raise RuleError(file, "incremental", "the rule reads $as_of: every night can change it, so it is recomputed whole")
    known = {f.stem for f in (SQL_ROOT / "shared").glob("v_*.sql")}
    views = {v for v in re.findall(r"\b(v_\w+|stg_\w+)\b", query) if v in known or v.startswith("stg_")}
    views -= set(GRAIN_VIEWS[value])
    if views:
        raise RuleError(file, "incremental", f"reads {', '.join(sorted(views))}, which is not one of the views keyed "
                                             f"by {value} ({', '.join(GRAIN_VIEWS[value])})")


@functools.lru_cache(maxsize=256)
def _parsed(file: Path, mtime_ns: int, size: int) -> Rule:
    """parse_rule, once per version of a file in a process (a served process runs many nights; a
    batch reads the catalog in the rules and the scorer): the portability check parses SQL, 40 ms a rule."""
    return parse_rule(file)


def load_catalog(rules_dir: Path | str | None = None) -> list[Rule]:
    """Every ``*.yaml`` in the folder, sorted by id; refuses duplicates."""
    d = Path(rules_dir) if rules_dir is not None else RULES_DIR
    files = [f for f in sorted(d.glob("*.yaml")) + sorted(d.glob("*.yml")) if not f.name.endswith(CASES_SUFFIX)]
    if not files:
        raise RuleError(d, "(folder)", "no rule files")
    seen: dict[str, Path] = {}
    rules = []
    for f in files:
        st = f.stat()
        r = _parsed(f, st.st_mtime_ns, st.st_size)
        if r.id in seen:
            raise RuleError(f, "id", f"duplicate id {r.id!r} (also in {seen[r.id].name})")
        seen[r.id] = f
        rules.append(r)
    return sorted(rules, key=lambda r: r.id)
