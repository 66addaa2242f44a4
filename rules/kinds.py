"""Rule kinds: the common shapes of rule, each with one parser and one SQL writer.

A rule file names its ``kind`` and says only the intent; the kind writes the SELECT that
:mod:`rules.compile` wraps (hit columns, casts, evidence). ``query:`` is the escape hatch (soda-core's
``failed rows``): a whole SELECT, for a rule no kind fits, with a YAML comment saying why.

- ``condition``: the records of a subject that meet a condition (``where``), e.g. a payment for a
  period in which the payee is under the age: one hit per subject (and program), over the records
  that meet it. ``register:`` joins another register by the record's household (``of: vehicles``,
  ``properties``, ``posts``), gathered ``per: household`` or ``per: record`` (``during: true``: a post
  held during the record's period), so that a record meeting the condition through several rows
  counts once; its ``fields`` and ``lists`` are ``reg.<name>`` in ``where`` and fields of the evidence.
- ``pair``: two subjects in one block (``block_on``, as Splink writes it) whose names compare at
  one of the comparison ``levels`` (Splink's comparison levels: the first that holds wins).
- ``window_count``: more records per subject in one window (``per``) than allowed; the amount is
  the records beyond the allowed number.
- ``absence``: registered persons who meet a condition (``where``) and are ``expected`` in a period
  but have no record of the stream (``records``) for it; the periods judged are those the stream ran
  in the person's county, up to the latest ended one (which must be missing); the amount is what is
  ``owed`` for each missing period.

Every kind writes the subject's location ONE way (:func:`location`): the county of the latest
record; the township and village of the registration, falling back to the record's own (latest).
An absence has no record: the registration's county, township and village.
Evidence is only the rule's template: record lists are templates too (``lists``), rendered here;
``[至 {end_date}|在职]`` in a template is an optional part (shown when its fields have values, else
the text after ``|``), so that no rule builds evidence with ``||``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rules.grammar import FIELD_REF, IDENT, RuleError, check_template, hit_columns, template_parts

LIST_SEPARATORS = ("、", "；")


@dataclass(frozen=True)
class Records:
    """A stream of dated records that belong to a person (a view of ``sql/shared/``)."""
    view: str
    alias: str
    record_id: str
    time: str                  # orders the records; the latest gives the location
    person: str                # the person's ID column
    reg_name: str              # the registered name
    name: str | None           # the name the record itself carries
    program: str | None        # the program column, or None for one program's extract...
    fixed_program: str | None  # ...whose program this is
    own_place: bool            # the record carries a township and village of its own


RECORDS = {
    "payments": Records("v_payment", "p", "payment_id", "period", "id_number", "reg_name", "name", "program_code",
                        None, True),
    "training_claims": Records("v_training_claim", "c", "claim_id", "claim_date", "id_number", "reg_name", "name",
                               None, "PEIXUN", False),
    "service_orders": Records("v_service_order", "o", "order_id", "start_time", "elder_id_number", "elder_name",
                              None, None, "YANGLAO_FUWU", False),
}
SUBJECTS = ("person", "household")


def program_sql(src: Records, a: str) -> str:
    return f"{a}.{src.program}" if src.program else f"'{src.fixed_program}'"


def location(src: Records, a: str) -> list[str]:
    """county, township, village of a subject's records: the one way every kind writes it. All three
    from one record, the latest (ties: the greatest county, then the greatest value): the county of
    one record with the township of another could be a township of another county, a list no office
    owns. Where the record's county is the registration's, the registration's township and village
    (v_payment's reg_township), else the record's own (none for records without a place: 未分配乡镇)."""
    t = f"{a}.{src.time}"
    county = f"coalesce({a}.county_code, '')"
    out = [f"nullif(arg_max({county}, ({t}, {county})), '') AS county_code"]
    for col in ("township", "village"):
        value = f"coalesce({a}.reg_{col}, {a}.{col}, '')" if src.own_place else f"coalesce({a}.reg_{col}, '')"
        out.append(f"nullif(arg_max({value}, ({t}, {county}, {value})), '') AS {col}")
    return out


def latest(value: str, time: str) -> str:
    """The value of the latest row by ``time``, ties broken by the greatest value (the same on every engine)."""
    return f"arg_max({value}, ({time}, {value}))"


def subject_columns(src: Records, a: str, subject: str) -> list[str]:
    t = f"{a}.{src.time}"
    if subject == "household":
        return ["'household' AS subject_type", f"{a}.household_id AS subject_id",
                f"{latest(f'{a}.{src.person}', t)} AS id_number",
                f"coalesce({latest(f'{a}.{src.reg_name}', t)}, {latest(f'{a}.{src.name}', t)}) AS name"]
    name = (f"coalesce(min({a}.{src.reg_name}), min({a}.{src.name}))" if src.name
            else f"min({a}.{src.reg_name})")
    return ["'person' AS subject_type", f"{a}.{src.person} AS subject_id", f"{a}.{src.person} AS id_number",
            f"{name} AS name"]


# ------------------------------------------------------------------------------ record lists

def list_sql(file, key: str, spec, a: str, order: str | None, texts: dict) -> str:
    """``string_agg`` of one text per row of alias ``a``, in ``order`` (or the spec's ``order``: a column of
    ``a``); its literal pieces are bound parameters. An optional part ``[...{field}...|fallback]`` shows
    when its fields have values (see :func:`rules.catalog.template_parts`)."""
    if isinstance(spec, str):
        spec = {"each": spec}
    if not isinstance(spec, dict) or set(spec) - {"each", "sep", "distinct", "order"} \
            or not isinstance(spec.get("each"), str):
        raise RuleError(file, key, "expected a template, or {each: template, sep: 、|；, distinct: true, order: column}")
    sep = spec.get("sep", "、")
    if sep not in LIST_SEPARATORS:
        raise RuleError(file, f"{key}.sep", f"one of {', '.join(LIST_SEPARATORS)}")
    check_template(file, f"{key}.each", spec["each"])
    name = key.replace(".", "_")
    n = iter(range(10_000))

    def col(field: str) -> str:
        c = field if "." in field else f"{a}.{field}"
        if not all(IDENT.match(x) for x in c.split(".")) or c.count(".") != 1:
            raise RuleError(file, key, f"{{{field}}} is not a column (or alias.column)")
        return c

    def pieces(parts) -> list[str]:
        out = []
        for kind, x in parts:
            if kind == "field":
                out.append(f"CAST({col(x)} AS VARCHAR)")
                continue
            i = next(n)
            if x:
                texts[f"sys_{name}_{i}"] = x
                out.append(f"$sys_{name}_{i}")
        return out

    items = []
    for part in template_parts(spec["each"]):
        if part[0] != "group":
            items += pieces([part])
            continue
        present = " AND ".join(f"{col(x)} IS NOT NULL" for kind, x in part[1] if kind == "field")
        i = next(n)
        texts[f"sys_{name}_{i}"] = part[2]
        items.append(f"CASE WHEN {present} THEN {' || '.join(pieces(part[1]))} ELSE $sys_{name}_{i} END")
    item = " || ".join(items)
    texts[f"sys_{name}_sep"] = sep
    if spec.get("distinct"):
        return f"string_agg(DISTINCT {item}, $sys_{name}_sep ORDER BY {item})"
    if spec.get("order") is not None:
        order = col(str(spec["order"]))
    if order is None:
        raise RuleError(file, key, "a list of a register's rows says its order (order: column) or distinct: true")
    return f"string_agg({item}, $sys_{name}_sep ORDER BY {order})"


def _mapping(file, key, value) -> dict:
    value = value or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and IDENT.match(k) for k in value):
        raise RuleError(file, key, "expected a mapping name: SQL expression")
    for k, v in value.items():
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise RuleError(file, f"{key}.{k}", "expected an SQL expression")
    return {k: _one_line(str(v)) for k, v in value.items()}


def _one_line(expr: str) -> str:
    return re.sub(r"\s*\n\s*", " ", expr.strip())


def _text(file, key, value, required=True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or ";" in value:
        raise RuleError(file, key, "expected one SQL expression")
    return _one_line(value)


def _records(file, doc) -> Records:
    src = doc.get("records")
    if src not in RECORDS:
        raise RuleError(file, "records", f"one of {', '.join(RECORDS)}")
    return RECORDS[src]


def _evidence_fields(doc, src: Records, a: str, fields: dict, params: dict, texts: dict, file,
                     own: tuple[str, ...] = ("amount", "program_name", "record_ids")) -> list[str]:
    """The columns the evidence template names: the rule's fields and lists, the kind's standard
    fields (amount, program_name, record_ids) and parameters (bound, as ``$name``)."""
    out = [f"{expr} AS {k}" for k, expr in fields.items()]
    for k, spec in (doc.get("lists") or {}).items():
        if not IDENT.match(str(k)):
            raise RuleError(file, f"lists.{k}", "a list's name is a lower-case identifier")
        out.append(f"{list_sql(file, f'lists.{k}', spec, a, f'{a}.{src.time}, {a}.{src.record_id}', texts)} AS {k}")
        fields = {**fields, k: ""}
    standard = {"amount": f"sum({a}.amount)", "program_name": f"program_name({program_sql(src, a)})",
                "record_ids": f"string_agg({a}.{src.record_id}, '、' ORDER BY {a}.{src.time}, {a}.{src.record_id})"}
    standard = {k: v for k, v in standard.items() if k in own}
    for f in dict.fromkeys(FIELD_REF.findall(doc.get("evidence") or "")):
        if f in fields or f in {c for c, _ in hit_columns()}:
            continue
        if f in standard:
            out.append(f"{standard[f]} AS {f}")
        elif f in params:
            out.append(f"${f} AS {f}")
        elif not IDENT.match(f):
            raise RuleError(file, "evidence", f"{{{f}}} is not a column name")
        else:
            raise RuleError(file, "evidence", unknown_field(f, [*fields, *standard, *params]))
    return out


def unknown_field(field: str, known) -> str:
    return (f"{{{field}}} is none of the hit columns, the rule's parameters, fields or lists, or the kind's "
            f"own ({', '.join(sorted(set(known)))})")


# ------------------------------------------------------------------------------ condition

CONDITION_KEYS = ("records", "subject", "join", "derive", "register", "where", "amount_at_risk", "fields", "lists")


@dataclass(frozen=True)
class Register:
    """Another register, joined to a record by the household of its person (a view of ``sql/shared/``)."""
    view: str
    alias: str


REGISTERS = {"vehicles": Register("v_household_vehicle", "v"), "properties": Register("v_household_property", "pr"),
             "posts": Register("v_servant_post", "s")}
REGISTER_KEYS = ("of", "per", "during", "where", "fields", "lists")


def register_sql(file, spec, src: Records, a: str, scope: list[str], texts: dict) -> tuple[str, str, dict]:
    """``register:`` of a condition: the rows of another register in the record's household (``of``),
    gathered ``per: household`` (once per household: its rows whatever the record) or ``per: record``
    (the rows matched to each record, e.g. ``during: true``, a post held during the record's period), so
    that a record meeting the condition through several rows still counts once. Its ``fields`` and
    ``lists`` are columns of ``reg`` for the rule's ``where`` (``reg.since``) and evidence fields (per
    household: the household's; per record: the latest record's). Returns the CTE, the join, the fields."""
    if not isinstance(spec, dict) or set(spec) - set(REGISTER_KEYS):
        raise RuleError(file, "register", f"expected a mapping of {', '.join(REGISTER_KEYS)}")
    if spec.get("of") not in REGISTERS:
        raise RuleError(file, "register.of", f"one of {', '.join(REGISTERS)}")
    if src.view != "v_payment":
        raise RuleError(file, "register", "a register is joined by the household of payments")
    per = spec.get("per", "household")
    if per not in ("household", "record"):
        raise RuleError(file, "register.per", "household or record")
    during = spec.get("during", False)
    if during not in (True, False) or (during and per != "record"):
        raise RuleError(file, "register.during", "true (the row's start_date..end_date overlaps the record's "
                                                 "period), with per: record")
    reg = REGISTERS[spec["of"]]
    r = reg.alias
    where = [w for w in [_text(file, "register.where", spec.get("where"), required=False)] if w]
    fields = _mapping(file, "register.fields", spec.get("fields"))
    cols = [f"{e} AS {k}" for k, e in fields.items()]
    for k, ls in (spec.get("lists") or {}).items():
        if not IDENT.match(str(k)):
            raise RuleError(file, f"register.lists.{k}", "a list's name is a lower-case identifier")
        cols.append(f"{list_sql(file, f'register.lists.{k}', ls, r, None, texts)} AS {k}")
        fields[k] = ""
    if per == "household":
        sel = [f"{r}.household_id"] + cols
        cte = (f"reg AS (  -- the household's rows of {reg.view}\n    SELECT " + ",\n           ".join(sel)
               + f"\n    FROM {reg.view} {r}" + (f"\n    WHERE {' AND '.join(where)}" if where else "")
               + f"\n    GROUP BY {r}.household_id\n)")
        return cte, f"reg ON reg.household_id = {a}.household_id", {k: f"min(reg.{k})" for k in fields}
    if during:
        where += [f"({r}.start_date IS NULL OR {r}.start_date <= {a}.period_end)",
                  f"({r}.end_date IS NULL OR {r}.end_date >= {a}.period_start)"]
    sel = [f"{a}.{src.record_id}"] + cols
    cte = (f"reg AS (  -- the rows of {reg.view} matched to each record\n    SELECT " + ",\n           ".join(sel)
           + f"\n    FROM {src.view} {a} JOIN {reg.view} {r} ON {r}.household_id = {a}.household_id"
           + f"\n    WHERE " + "\n      AND ".join(scope + where) + f"\n    GROUP BY {a}.{src.record_id}\n)")
    return (cte, f"reg ON reg.{src.record_id} = {a}.{src.record_id}",
            {k: latest(f"reg.{k}", f"{a}.{src.time}") for k in fields})


def condition(file, doc: dict, params: dict, texts: dict) -> str:
    src = _records(file, doc)
    a = src.alias
    subject = doc.get("subject", "person")
    if subject not in SUBJECTS or (subject == "household" and src.view != "v_payment"):
        raise RuleError(file, "subject", "person, or household (of payments)")
    where = _text(file, "where", doc.get("where"), required=False)
    join = _text(file, "join", doc.get("join"), required=False)
    derive = _mapping(file, "derive", doc.get("derive"))
    fields = _mapping(file, "fields", doc.get("fields"))
    amount = _text(file, "amount_at_risk", doc.get("amount_at_risk"), required=False) or f"sum({a}.amount)"
    key = f"{a}.household_id" if subject == "household" else f"{a}.{src.person}"
    records = f"{src.view} {a}"
    scope = [f"list_contains($programs, {program_sql(src, a)})", f"{key} IS NOT NULL"]
    ctes = []
    if "register" in doc:
        if derive or join:
            raise RuleError(file, "register", "a register, or a join and derived columns, not both")
        cte, on, reg_fields = register_sql(file, doc["register"], src, a, scope, texts)
        ctes.append(cte)
        records += f" JOIN {on}"
        fields = {**reg_fields, **fields}
    if derive or join:  # the records with their derived columns (and joined ones), under the same alias
        cols = ",\n           ".join([f"{a}.*"] + [f"{e} AS {k}" for k, e in derive.items()])
        ctes.append(f"{a} AS (\n    SELECT {cols}\n    FROM {records}" + (f"\n    JOIN {join}" if join else "")
                    + f"\n    WHERE {' AND '.join(scope)}\n)")
        records, scope = a, []
    cte = "WITH " + ",\n".join(ctes) + "\n" if ctes else ""
    group = [key] + ([f"{a}.{src.program}"] if src.program else [])
    select = (subject_columns(src, a, subject) + [f"{program_sql(src, a)} AS program_code"] + location(src, a)
              + [f"min({a}.period) AS first_period", f"max({a}.period) AS last_period",
                 f"{amount} AS amount_at_risk", "count(*) AS evidence_size"]
              + _evidence_fields(doc, src, a, fields, params, texts, file))
    return (cte + "SELECT\n    " + ",\n    ".join(select) + f"\nFROM {records}\nWHERE "
            + "\n  AND ".join(scope + ([f"({where})"] if where else []) or ["true"]) + "\nGROUP BY " + ", ".join(group))


# ------------------------------------------------------------------------------ pair

PAIR_KEYS = ("records", "block_on", "levels")
LEVELS = ("exact", "jaro_winkler", "one_character_apart")


def _threshold(file, key: str, spec: dict, name: str, default) -> str:
    """A level's threshold as SQL: a number, or a parameter ``$name`` (bound, never pasted)."""
    value = spec.get(name, default)
    if isinstance(value, bool) or not (isinstance(value, (int, float))
                                       or (isinstance(value, str) and re.fullmatch(r"\$[a-z_][a-z0-9_]*", value))):
        raise RuleError(file, key, "a number or a parameter ($name)")
    return str(value)


def level_sql(file, key: str, level, texts: dict) -> str:
    """One comparison level as a condition over the pair's left (l) and right (r) readings.
    ``exact: reading`` the same value; ``jaro_winkler: {column, at_least[, min_length]}`` Jaro-Winkler over the
    whole string (optionally only for written names of at least min_length characters); ``one_character_apart: {column, min_length}`` one edit apart, names of at least
    min_length characters (a substitution: one position differs). ``at_least``/``min_length`` may name a parameter ($name)."""
    if not isinstance(level, dict) or len(level) - ("label" in level) != 1:
        raise RuleError(file, key, f"one of {', '.join(LEVELS)}, and a label")
    (what, spec), = ((k, v) for k, v in level.items() if k != "label")
    if what not in LEVELS:
        raise RuleError(file, key, f"unknown level {what!r} (one of {', '.join(LEVELS)})")
    if not isinstance(level.get("label"), str):
        raise RuleError(file, f"{key}.label", "the text the evidence shows for this level")
    spec = {"column": spec} if isinstance(spec, str) else spec
    col = spec.get("column") if isinstance(spec, dict) else None
    if not (isinstance(col, str) and IDENT.match(col)):
        raise RuleError(file, f"{key}.{what}", "names a column of name_reading (name, folded, reading)")
    l, r = f"l.{col}", f"r.{col}"
    if what == "exact":
        return f"{l} = {r}"
    if what == "jaro_winkler":
        jw = f"jaro_winkler_similarity({l}, {r}) >= {_threshold(file, f'{key}.{what}.at_least', spec, 'at_least', 0.9)}"
        if "min_length" not in spec:
            return jw
        # written names of at least min_length characters: in a two-character name one syllable of two
        # differs (王东 / 王龙), which the shared surname's letters lift as high as 叶大海 / 叶大瀚
        shortest = _threshold(file, f"{key}.{what}.min_length", spec, "min_length", 3)
        return f"length(l.folded) >= {shortest} AND length(r.folded) >= {shortest} AND {jw}"
    # characters, not bytes (DuckDB's levenshtein counts UTF-8 bytes): the same length, one position differs
    shortest = _threshold(file, f"{key}.{what}.min_length", spec, "min_length", 3)
    # (a lambda over the positions, not a correlated subquery: Spark runs the same; data_contracts/dialect.py)
    return (f"length({l}) = length({r}) AND length({l}) >= {shortest} AND array_length(list_filter("
            f"generate_series(1, length({l})), lambda i: substr({l}, i, 1) <> substr({r}, i, 1))) = 1")


PAIR_BLOCK_REQUIRED = ("program_code", "period")
PAIR_FIELDS = ("other_id", "other_name", "other_household", "subject_name", "name_level")


def pair(file, doc: dict, params: dict, texts: dict) -> str:
    """Persons paid in one block (``block_on`` columns of the payments equal, as Splink's
    ``block_on``; a block is always within one program and one period, so that both were paid for
    the same thing at the same time), the smaller ID the other, the larger the subject; a pair is a
    finding at the first comparison level (``levels``) that holds. One hit per pair, over the
    periods both were paid in the block. The evidence may name the pair's fields (other_id,
    other_name, other_household, subject_name, name_level: the level's label), the block's columns,
    the kind's own (amount, program_name) and the rule's parameters."""
    src = _records(file, doc)
    if src.view != "v_payment":
        raise RuleError(file, "records", "pairs are of payments")
    block = doc.get("block_on")
    if not isinstance(block, list) or not block or not all(isinstance(b, str) and IDENT.match(b) for b in block):
        raise RuleError(file, "block_on", "expected a list of columns of the records")
    missing = [b for b in PAIR_BLOCK_REQUIRED if b not in block]
    if missing:
        raise RuleError(file, "block_on", f"a pair's block is within one program and period: add {', '.join(missing)}")
    levels = doc.get("levels")
    if not isinstance(levels, list) or not levels:
        raise RuleError(file, "levels", "expected a list of comparison levels, the first that holds wins")
    whens = []
    for i, lv in enumerate(levels):
        texts[f"sys_level_{i}"] = lv.get("label") if isinstance(lv, dict) else None
        whens.append(f"WHEN {level_sql(file, f'levels[{i}]', lv, texts)} THEN $sys_level_{i}")
    keys = ", ".join(f"p.{b}" for b in block)
    on = " AND ".join(f"l.{b} = r.{b}" for b in block)
    # the persons' pairs are found a period apart first (one block a period holds the same persons)
    timeless = [b for b in block if b != "period"]
    on_timeless = " AND ".join(f"l.{b} = r.{b}" for b in timeless)
    # one row per person per block; its place as location() reads it (the value of its latest payment,
    # kinds.latest). A block holds one period: the latest is the greatest value, which max gives as
    # arg_max over (period, value) does, NULLs left out by both, at 2.5 times the speed (a 10M-person
    # city's 6.6M person-periods: 4 s to 1.7 s)
    place = [f"max(p.{c}) AS {c}" for c in ("county_code", "reg_township", "township", "reg_village", "village")
             if c not in block]
    fields = {"other_id": "r.other_id", **{f: f"min(r.{f})" for f in PAIR_FIELDS[1:4]},
              "name_level": "min(r.name_level)",
              "program_name": "string_agg(DISTINCT r.program_label, '、' ORDER BY r.program_label)",
              **{b: f"min(r.{b})" for b in block if b not in {c for c, _ in hit_columns()}}}
    select = (["'person' AS subject_type", "r.subject_id", "r.subject_id AS id_number",
               "min(r.subject_name) AS name",
               "CASE WHEN count(DISTINCT r.program_code) = 1 THEN min(r.program_code) END AS program_code"]
              + location(src, "r")
              + ["min(r.period) AS first_period", "max(r.period) AS last_period", "sum(r.amount) AS amount_at_risk",
                 "count(DISTINCT r.period) AS evidence_size"]
              + _evidence_fields(doc, src, "r", fields, params, texts, file, own=("amount",)))
    return f"""WITH p AS (  -- one row per person per block
    SELECT p.id_number, {keys}, coalesce(min(p.reg_name), min(p.name)) AS name,
           min(p.household_id) AS household_id, sum(p.amount) AS amount,
           program_name(p.program_code) AS program_label,
           {(','.join(chr(10) + '           ' + c for c in place)).lstrip()}
    FROM v_payment p
    WHERE list_contains($programs, p.program_code) AND p.id_number_valid
      AND {' AND '.join(f'p.{b} IS NOT NULL' for b in block)}
    GROUP BY p.id_number, {keys}
),
persons AS (  -- each person's names in a block, whatever its period
    SELECT DISTINCT id_number, {', '.join(timeless)}, name FROM p
),
person_pairs AS (  -- block_on({', '.join(timeless)}), the period aside
    SELECT l.id_number AS other_id, r.id_number AS subject_id, l.name AS other_name, r.name AS subject_name
    FROM persons l JOIN persons r ON {on_timeless} AND l.id_number < r.id_number
),
names AS (  -- each distinct pair of names compared once, at the first level that holds
    SELECT x.other_name, x.subject_name,
           CASE {' '.join(whens)} END AS name_level
    FROM (SELECT DISTINCT other_name, subject_name FROM person_pairs) x
    JOIN name_reading l ON l.name = x.other_name
    JOIN name_reading r ON r.name = x.subject_name
),
candidates AS (  -- the persons whose names compare at a level somewhere: only their blocks are paired
    SELECT DISTINCT other_id, subject_id FROM person_pairs JOIN names USING (other_name, subject_name)
    WHERE names.name_level IS NOT NULL
),
pairs AS (  -- block_on({', '.join(block)}), the other's rows with their candidate first (the DISTINCT keeps
            -- the planner from pairing the blocks' rows before the candidates pick them: 28M rows at 10M persons)
    SELECT l.id_number AS other_id, r.id_number AS subject_id, l.name AS other_name, r.name AS subject_name,
           l.household_id AS other_household, r.*
    FROM (SELECT DISTINCT c.subject_id AS candidate, p.* FROM candidates c JOIN p ON p.id_number = c.other_id) l
    JOIN p r ON r.id_number = l.candidate AND {on}
),
r AS (
    SELECT pairs.*, names.name_level FROM pairs JOIN names USING (other_name, subject_name)
    WHERE names.name_level IS NOT NULL
)
SELECT
    """ + ",\n    ".join(select) + """
FROM r
GROUP BY r.subject_id, r.other_id"""


# ------------------------------------------------------------------------------ window_count

WINDOW_KEYS = ("records", "per", "max_per_window", "lists")


def window_count(file, doc: dict, params: dict, texts: dict) -> str:
    """A person with more records in one window (``per``: an SQL expression of the record, e.g.
    ``year(c.claim_date)``) than ``max_per_window`` ($parameter); the amount is the records beyond
    that number in each window, in time order. ``{windows}`` lists the windows over the limit."""
    src = _records(file, doc)
    a = src.alias
    per = _text(file, "per", doc.get("per"))
    most = _text(file, "max_per_window", doc.get("max_per_window"))
    t = f"{a}.{src.time}"
    key = f"{a}.{src.person}"
    wk = f"CAST({a}.window_key AS VARCHAR)"
    select = (subject_columns(src, a, "person") + [f"{program_sql(src, a)} AS program_code"] + location(src, a)
              + [f"min({a}.period) AS first_period", f"max({a}.period) AS last_period",
                 f"coalesce(sum({a}.amount) FILTER (WHERE {a}.nth > {most}), 0) AS amount_at_risk",
                 "count(*) AS evidence_size"]
              + _evidence_fields(doc, src, a, {"windows": f"string_agg(DISTINCT {wk}, '、' ORDER BY {wk})"},
                                 params, texts, file))
    return (f"WITH {a} AS (\n    SELECT {a}.*, {per} AS window_key,\n"
            f"           count(*) OVER (PARTITION BY {key}, {per}) AS n_window,\n"
            f"           row_number() OVER (PARTITION BY {key}, {per} ORDER BY {t}, {a}.{src.record_id}) AS nth\n"
            f"    FROM {src.view} {a}\n    WHERE {key} IS NOT NULL AND list_contains($programs, {program_sql(src, a)})\n)\n"
            "SELECT\n    " + ",\n    ".join(select) + f"\nFROM {a}\nWHERE {a}.n_window > {most}\nGROUP BY {key}")


# ------------------------------------------------------------------------------ absence

ABSENCE_KEYS = ("records", "where", "expected", "owed", "fields")


def absence(file, doc: dict, params: dict, texts: dict) -> str:
    """Registered persons (v_person ``r``) who meet ``where`` and, in a period ``w`` where ``expected``
    holds (``w.period``, ``w.period_end``), have no record of the stream (``records``, per program).

    The periods judged are those the stream has run in the person's registered county (some record
    there), ended by the batch date; a person is a finding when the latest of them (``r.judged_period``,
    ``r.judged_period_end``) is missing: a month still being paid is never judged. The evidence and the
    amount (``owed``: what each missing period should have paid) cover every missing period up to it;
    ``{missing_periods}`` lists them. The location is the registration's: there is no record to take it from."""
    src = _records(file, doc)
    if src.view != "v_payment":
        raise RuleError(file, "records", "an absence is of payments (a stream with periods)")
    where = _text(file, "where", doc.get("where"))
    expected = _text(file, "expected", doc.get("expected"))
    owed = _text(file, "owed", doc.get("owed"))
    fields = _mapping(file, "fields", doc.get("fields"))
    own = ("judged_period", "missing_periods")
    hit = {c for c, _ in hit_columns()}
    for f in dict.fromkeys(FIELD_REF.findall(doc.get("evidence") or "")):
        if f not in hit and f not in fields and f not in own:
            raise RuleError(file, "evidence", unknown_field(f, [*fields, *own]))
    cols = "".join(f", {e} AS {k}" for k, e in fields.items())
    missing = ("NOT EXISTS (SELECT 1 FROM seen x WHERE x.id_number = r.id_number AND x.program_code = w.program_code "
               "AND x.period = w.period)")
    return f"""WITH stream AS (
    SELECT p.id_number, p.program_code, p.period, p.county_code FROM v_payment p
    WHERE list_contains($programs, p.program_code)
),
seen AS (  -- who has a record for which period, in any county
    SELECT DISTINCT id_number, program_code, period FROM stream
),
ran AS (  -- the periods the stream has run in each county, among those ended by the batch date
    SELECT DISTINCT county_code, program_code, period, period_end(period) AS period_end FROM stream
    WHERE county_code IS NOT NULL AND period_end(period) <= $as_of
),
judged AS (  -- per county: the latest of them
    SELECT county_code, program_code, max(period) AS period, period_end(max(period)) AS period_end
    FROM ran GROUP BY county_code, program_code
),
r AS (  -- the persons who meet the condition and are expected in the judged period, with no record of it
    SELECT r.*, w.program_code, w.period AS judged_period, w.period_end AS judged_period_end
    FROM v_person r JOIN judged w ON w.county_code = r.county_code
    WHERE r.id_number IS NOT NULL AND ({where}) AND ({expected})
      AND {missing}
),
missing AS (  -- every period the county has run up to the judged one, expected of the person, with no record
    SELECT r.id_number, w.program_code, w.period, {owed} AS owed
    FROM r JOIN ran w ON w.county_code = r.county_code AND w.program_code = r.program_code
                     AND w.period <= r.judged_period AND ({expected})
    WHERE {missing}
),
gaps AS (
    SELECT id_number, program_code, min(period) AS first_period, max(period) AS last_period,
           sum(owed) AS amount_at_risk, count(*) AS evidence_size,
           string_agg(period, '、' ORDER BY period) AS missing_periods
    FROM missing GROUP BY id_number, program_code
)
SELECT
    'person' AS subject_type, r.id_number AS subject_id, r.id_number, r.name, r.program_code,
    r.county_code, r.township, r.village,
    g.first_period, g.last_period, g.amount_at_risk, g.evidence_size,
    r.judged_period{cols}, g.missing_periods
FROM r JOIN gaps g ON g.id_number = r.id_number AND g.program_code = r.program_code"""


KINDS = {"condition": (CONDITION_KEYS, condition), "pair": (PAIR_KEYS, pair),
         "window_count": (WINDOW_KEYS, window_count), "absence": (ABSENCE_KEYS, absence)}
