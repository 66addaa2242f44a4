"""One SQL source, two engines: the project's SQL (written in DuckDB's dialect) as Spark SQL.

Every rule, shared view and feature query is written once, in DuckDB SQL, and runs as written on the
embedded warehouse. :func:`to_spark` turns one statement into Spark SQL with sqlglot (it parses the
DuckDB text and writes Spark's), plus the rewrites sqlglot does not make (STACK-NOTES.md, "Spark"):

- the macros of ``sql/shared/`` are inlined (Spark has none); ``program_name`` becomes a CASE over
  POLICY.md's program names (:mod:`data_contracts.policy`);
- ``$parameters`` become literals (sqlglot quotes them; a list becomes ``array(...)``);
- DuckDB functions Spark lacks are mapped: ``try_strptime`` (``try_to_timestamp``), ``to_months`` /
  ``to_minutes`` (interval constructors), ``regexp_full_match`` (an anchored ``rlike``), ``len`` of a
  list (``size``), ``arg_max``/``arg_min``, which skip a NULL value on DuckDB and not on Spark;
  ordered ``string_agg`` (``array_join`` over a sorted ``collect_list``, because Spark 4.3's LISTAGG
  fails next to ``count(DISTINCT)``);
- two ``unnest`` in one SELECT are zipped (``inline(arrays_zip(...))``): as written, Spark would
  cross them.

:func:`check` is the portable subset, applied when the rule catalog loads (``rules.catalog``): a
statement using a function neither engine's mapping knows, or a construct whose result depends on
the order rows arrive in (``any_value``, ``arg_max`` without a tie-breaker, ``string_agg`` or
``list`` without ORDER BY), is refused with the construct named, so that a new rule is portable by
construction. Ties are broken the same way on both engines: ``arg_max(x, (t, x))`` takes, among the
rows with the latest ``t``, the greatest ``x``. Not checked (a reviewer's job, and the parity test's):
that a window's ORDER BY is total, e.g. ends with the record's id.
"""
from __future__ import annotations

import datetime as dt
import decimal
import re
from functools import cache

import sqlglot
from sqlglot import exp

from data_contracts import policy, warehouse

ENGINES = ("duckdb", "spark")

# Functions the rules may call besides those sqlglot types (exp.Func subclasses it translates itself):
# the shared macros (inlined), DuckDB functions mapped here, and the Python UDFs both engines register.
MAPPED = {"try_strptime", "to_months", "to_minutes"}
UDFS = {"name_similarity", "jaro_winkler_similarity"}
# Typed functions sqlglot writes correctly for Spark (checked by the parity test): anything else typed
# is refused by check() so that a rule cannot use a construct that was never proven on both engines.
PORTABLE = {
    "Or", "ConcatWs", "Exists", "Struct", "Not", "Xor", "Is", "In", "Between", "Like", "Abs", "And", "ArgMax", "ArgMin", "ArrayAgg", "ArrayContains", "ArrayDistinct", "ArraySort", "ArrayToString",
    "Avg", "Case", "Cast", "Coalesce", "Concat", "Count", "CurrentDate", "Date", "DateDiff", "DateFormat", "Day",
    "Explode", "Flatten", "GenerateSeries", "RegexpFullMatch", "JarowinklerSimilarity", "Greatest", "GroupConcat",
    "If", "Least", "Length", "Lower", "Max", "Median", "Min",
    "Month", "Nullif", "Round", "RowNumber", "SortArray", "StrPosition", "StrToTime", "Substring", "Sum", "TimeToStr",
    "Trim", "TryCast", "Upper", "Year", "Unnest", "LastDay", "Floor", "Ceil", "Mod", "Lag", "Lead", "Sign",
    "StrToDate", "ArrayFilter", "ArraySize", "Quantile", "Rank", "DenseRank", "Stddev", "Variance", "Lambda",
}


class NotPortable(ValueError):
    """A statement outside the portable subset: names the construct."""


def _parse(sql: str) -> exp.Expression:
    return sqlglot.parse_one(warehouse.strip_comments(sql), read="duckdb")


@cache
def macros() -> dict[str, tuple[tuple[str, ...], exp.Expression]]:
    """The shared SQL's macros: name -> (parameters, body)."""
    out = {}
    for name, text in warehouse.read_folder("shared"):
        m = re.search(r"CREATE\s+(?:OR\s+REPLACE\s+)?MACRO\s+(\w+)\s*\(([^)]*)\)\s+AS\s+\((.*)\)\s*$",
                      warehouse.strip_comments(text), re.S | re.I)
        if m:
            params = tuple(p.strip() for p in m.group(2).split(",") if p.strip())
            out[m.group(1)] = (params, sqlglot.parse_one(m.group(3), read="duckdb"))
    # program_name reads a temp table on DuckDB; on Spark the same names as a CASE
    code = exp.column("code")
    case = exp.Case(this=code, ifs=[exp.If(this=exp.Literal.string(k), true=exp.Literal.string(v))
                                    for k, v in sorted(policy.PROGRAMS.items())], default=code.copy())
    out["program_name"] = (("code",), case)
    return out


def _func_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return None


def _inline_macros(tree: exp.Expression) -> exp.Expression:
    defs = macros()
    for _ in range(10):  # macros call macros (id_birth_date inside age_years' argument)
        calls = [n for n in tree.find_all(exp.Anonymous) if _func_name(n) in defs]
        if not calls:
            return tree
        for call in calls:
            params, body = defs[_func_name(call)]
            args = dict(zip(params, call.expressions))
            new = body.copy().transform(
                lambda n: exp.Paren(this=args[n.name].copy())
                if isinstance(n, exp.Column) and not n.table and n.name in args else n)
            call.replace(exp.Paren(this=new))
    raise NotPortable("macros nested more than 10 deep")


def literal(value) -> exp.Expression:
    """A Python value as a SQL literal (both engines)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float, decimal.Decimal)):
        return exp.Literal.number(value)
    if isinstance(value, dt.datetime):
        return exp.Cast(this=exp.Literal.string(value.isoformat(sep=" ")), to=exp.DataType.build("TIMESTAMP"))
    if isinstance(value, dt.date):
        return exp.Cast(this=exp.Literal.string(value.isoformat()), to=exp.DataType.build("DATE"))
    if isinstance(value, (list, tuple)):
        return exp.Array(expressions=[literal(v) for v in value])
    return exp.Literal.string(str(value))


def _bind(tree: exp.Expression, params: dict) -> exp.Expression:
    def sub(n):
        if isinstance(n, (exp.Parameter, exp.Placeholder)):
            name = n.name
            if name not in params:
                raise NotPortable(f"${name} has no value")
            return literal(params[name])
        return n
    return tree.transform(sub)


def _zip_unnests(tree: exp.Expression) -> None:
    """``SELECT unnest(a) AS x, unnest(b) AS y`` walks a and b side by side on DuckDB; Spark would
    cross them. Zip them into one generator: ``SELECT inline(arrays_zip(a, b)) AS (x, y)``."""
    for select in list(tree.find_all(exp.Select)):
        gens = [e for e in select.expressions if isinstance(e, exp.Alias) and isinstance(e.this, (exp.Unnest, exp.Explode))]
        if len(gens) < 2:
            continue
        if len(gens) != len(select.expressions):
            raise NotPortable("unnest() next to other columns in one SELECT")
        arrays = [g.this.expressions[0] if isinstance(g.this, exp.Unnest) else g.this.this for g in gens]
        zipped = exp.Anonymous(this="inline", expressions=[exp.Anonymous(this="arrays_zip", expressions=arrays)])
        select.set("expressions", [exp.Aliases(this=zipped, expressions=[exp.to_identifier(g.alias) for g in gens])])


def _ordered_list(this: exp.Expression) -> exp.Expression:
    """The array an ordered aggregate builds (``string_agg``'s ``this`` or ``list``'s): ``x ORDER BY k1, k2`` ->
    ``transform(array_sort(collect_list(named_struct(k0, k1, v, x))), s -> s.v)`` (rows whose x is NULL
    left out, as string_agg does); ``DISTINCT x ORDER BY x`` -> ``array_sort(collect_set(x))``. Spark's own
    LISTAGG is not used: 4.3 fails with it next to count(DISTINCT)."""
    order = None
    if isinstance(this, exp.Order):
        order, this = this, this.this
    distinct = isinstance(this, exp.Distinct)
    value = this.expressions[0] if distinct else this
    keys = [o.this for o in order.expressions] if order else []
    if any(o.args.get("desc") for o in (order.expressions if order else [])):
        raise NotPortable("an aggregate ordered DESC")
    if distinct:
        if keys and not all(k == value for k in keys):
            raise NotPortable("an aggregate of DISTINCT x ordered by another column")
        return exp.Anonymous(this="array_sort", expressions=[exp.Anonymous(this="collect_set", expressions=[value.copy()])])
    if not keys:
        raise NotPortable("an aggregate into a list or text without ORDER BY (its order would depend on the engine)")
    parts = [x for i, k in enumerate(keys) for x in (exp.Literal.string(f"k{i}"), k.copy())]
    struct = exp.Anonymous(this="named_struct", expressions=parts + [exp.Literal.string("v"), value.copy()])
    keep = exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())), true=struct)
    listed = exp.Anonymous(this="collect_list", expressions=[exp.Case(ifs=[keep])])
    lam = exp.Lambda(this=exp.Dot(this=exp.column("s"), expression=exp.to_identifier("v")),
                     expressions=[exp.to_identifier("s")])
    return exp.Anonymous(this="transform", expressions=[exp.Anonymous(this="array_sort", expressions=[listed]), lam])


def _spark_functions(tree: exp.Expression) -> exp.Expression:
    def sub(n):
        name = _func_name(n)
        args = n.expressions if name else []
        if name == "try_strptime":
            fmt = args[1].name
            java = {"%Y%m%d": "yyyyMMdd", "%Y-%m-%d": "yyyy-MM-dd", "%Y-%m": "yyyy-MM"}.get(fmt)
            if java is None:
                raise NotPortable(f"try_strptime format {fmt!r}")
            return exp.Anonymous(this="try_to_timestamp", expressions=[args[0], exp.Literal.string(java)])
        if name == "to_months":
            return exp.Anonymous(this="make_ym_interval", expressions=[exp.Literal.number(0), args[0]])
        if name == "to_minutes":
            return exp.Anonymous(this="make_dt_interval", expressions=[exp.Literal.number(0), exp.Literal.number(0),
                                                                       args[0], exp.Literal.number(0)])
        if type(n).__name__ == "RegexpFullMatch":
            pattern = exp.Literal.string(f"^(?:{n.expression.name})$")
            return exp.RegexpLike(this=n.this, expression=pattern)
        if isinstance(n, (exp.ArgMax, exp.ArgMin)):
            # DuckDB's arg_max skips rows whose value is NULL; Spark's max_by does not
            value, key = n.this, n.expression
            guarded = exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                                           true=key.copy())])
            return type(n)(this=value, expression=guarded)
        if type(n).__name__ == "JarowinklerSimilarity":
            # DuckDB's built-in; on Spark the project's UDF (rules.names): Spark 4.3's own
            # jaro_winkler_similarity scores differently (found at 10M persons), and shadows a UDF of that name
            return exp.Anonymous(this="sentinel_jaro_winkler", expressions=[n.this, n.expression])
        if isinstance(n, exp.GroupConcat):
            sep = n.args.get("separator") or exp.Literal.string(",")
            return exp.func("array_join", _ordered_list(n.this), sep.copy())
        if isinstance(n, exp.ArrayAgg) and isinstance(n.this, exp.Order):
            return _ordered_list(n.this)
        return n
    return tree.transform(sub)


def _tuples_as_structs(tree: exp.Expression) -> exp.Expression:
    """A row value ``(a, b)`` (DuckDB's unnamed struct, the tie-breaking key) is ``struct(a, b)`` on Spark."""
    return tree.transform(lambda n: exp.Anonymous(this="struct", expressions=n.expressions)
                          if isinstance(n, exp.Tuple) and not isinstance(n.parent, (exp.In, exp.Values)) else n)


def to_spark(sql: str, params: dict | None = None) -> str:
    """One DuckDB statement as Spark SQL, its ``$parameters`` bound to ``params`` as literals."""
    tree = _parse(sql)
    tree = _inline_macros(tree)
    if params is not None:
        tree = _bind(tree, params)
    _zip_unnests(tree)
    tree = _tuples_as_structs(tree)
    tree = _spark_functions(tree)
    if isinstance(tree, exp.Create):  # CREATE OR REPLACE VIEW -> a temporary view of the session
        tree.set("kind", "VIEW")
        tree.set("replace", True)
        tree.set("properties", exp.Properties(expressions=[exp.TemporaryProperty()]))
    return tree.sql(dialect="spark")


def check(sql: str) -> None:
    """Raise :class:`NotPortable` naming the first construct outside the portable subset."""
    tree = _parse(sql)
    known = set(macros()) | MAPPED | UDFS
    for n in tree.find_all(exp.Func):
        name = _func_name(n)
        if name is not None:
            if name not in known:
                raise NotPortable(f"{name}() is not in the portable subset")
            continue
        kind = type(n).__name__
        if kind == "Mode":
            raise NotPortable("mode() breaks ties differently on each engine (count, then arg_max(x, (n, x)))")
        if kind == "AnyValue":
            raise NotPortable("any_value() picks an arbitrary row (use min() or arg_max(x, (t, x)))")
        if kind in ("ArgMax", "ArgMin") and not isinstance(n.expression, exp.Tuple):
            raise NotPortable(f"{kind.lower().replace('arg', 'arg_')}(x, t) without a tie-breaker "
                              "(write arg_max(x, (t, x)): among equal t, the greatest x)")
        if kind == "GroupConcat" or kind == "ArrayAgg" and not _sorted_above(n):
            _ordered_list(n.this)  # refuses an order that would depend on the engine
        if kind not in PORTABLE:
            raise NotPortable(f"{kind}() is not in the portable subset")


def _sorted_above(node: exp.Expression) -> bool:
    p = node.parent
    while p is not None and not isinstance(p, exp.Select):
        if isinstance(p, exp.ArraySort):
            return True
        p = p.parent
    return False
