"""Outcome audit: on whom tonight's warnings fall, and whether the verifiers confirm them alike.

For each rule and each category, and for each view (county, township, program, sex, age band):

- **warning rate** per 1,000 paid persons of the group: persons (for the program view: person and
  program pairs) named by a warning the rule raised in the latest batch, over the persons paid in
  the audit window (the 12 full months before the batch date, as the scorer's window) *in the
  programs the rule applies to* (a GAOLING-only rule is compared among GAOLING recipients, not
  with children on GUER). Sex and age are read here for the audit only; no rule and no model
  feature reads them (models/FEATURES.md).
- **rate ratio**: the group's rate over the rate of everyone else in the rule's population.
  A group is **flagged** when the ratio is above 1.25 or below 0.8, *and* at least
  ``MIN_EXPECTED`` (5) warned persons are expected in the group at the overall rate (fewer cannot
  tell a bias from chance), *and* the difference is significant: a two-sided exact conditional
  binomial test of two rates (given the warnings of group and rest together, is the group's
  number what its share of the population predicts? ``scipy.stats.binomtest``), with the
  Benjamini-Hochberg false discovery rate held at 5% over every test of the audit
  (``scipy.stats.false_discovery_control``): with some 40 rules and categories times dozens of
  groups, a per-test 5% would flag a few groups in any city by chance.
- **confirmed share** (once the verifiers returned conclusions, table ``dispositions``): of the
  group's concluded warnings, the share confirmed or rectified; flagged when it is below 0.8
  times the share of everyone else with at least ``MIN_CONCLUDED`` (10) conclusions in the group
  and Fisher's exact test (two-sided) significant after the same correction: leads that waste
  the verifiers' time on one group.
- A view that is a rule's own criterion (age band for the age rules and for eligible_not_receiving,
  which checks GAOLING by age) is shown but never flagged (``CRITERION_VIEWS``).

With a generated city's answer key, each row also carries the planted anomalies' rate ratio in the
same group, and each flag whether the facts differ the same way (``facts_agree``): on a city where
the generator planted at random over places and sexes but each variant in one program, the flags
fall on programs and age bands, where the facts differ too, and on no place or sex
(tests/test_oversight.py).

Group counts are joins and one polars group-by per view (``_counts``); the rest of the population
is the whole minus the group. (Until 2026-11-30 they came from fairlearn's ``MetricFrame``, one per
view and level: the same counts, 0.5 s of every night at 1M persons with the frames it needed.)

Warnings that name no person (an account, a worker) and persons warned outside the paid
population (e.g. eligible_not_receiving: by definition not paid) are not in the rates; the
coverage table counts them per rule.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from data_contracts import warehouse
from rules import materialised

VIEWS = ("county", "township", "program", "sex", "age_band")
VIEW_COLUMN = {"county": "county_code", "township": "township", "program": "program_code", "sex": "sex",
               "age_band": "age_band"}
RATIO_HIGH, RATIO_LOW = 1.25, 0.8
MIN_EXPECTED = 5.0
FDR = 0.05
MIN_CONCLUDED = 10
SHARE_RATIO = 0.8
WINDOW_MONTHS = 12
# views that are a category's own criterion: the age rules warn by age, and so does the GAOLING
# entitlement check: their rates differ by age band by definition, which is shown but not flagged
CRITERION_VIEWS = {"age_ineligible": ("age_band",), "eligible_not_receiving": ("age_band",)}


@dataclass
class Audit:
    as_of: dt.date | None
    window: tuple[str, str] | None
    views: dict[str, pl.DataFrame] = field(default_factory=dict)  # view -> one row per (level, key, group)
    coverage: pl.DataFrame | None = None

    @property
    def flags(self) -> pl.DataFrame:
        parts = [v.filter(pl.col("flagged_rate") | pl.col("flagged_confirmed")) for v in self.views.values()]
        if not parts:
            return pl.DataFrame()
        return pl.concat(parts).sort("level", "key", "view", "group")


def _window(as_of: dt.date, months: int = WINDOW_MONTHS) -> tuple[str, str]:
    first = dt.date(as_of.year, as_of.month, 1)
    end = first - dt.timedelta(days=1)
    start_index = end.year * 12 + end.month - 1 - (months - 1)
    return f"{start_index // 12:04d}-{start_index % 12 + 1:02d}", end.strftime("%Y-%m")


def _latest_batch(con: duckdb.DuckDBPyConnection) -> dt.date | None:
    rows = con.execute("SELECT max(last_seen) FROM warnings").fetchall()
    return rows[0][0] if rows else None


def catalog_facts(rules_dir: Path | str | None = None, extra_dirs: tuple = ()) -> tuple[dict, dict]:
    """rule id -> the programs it applies to (its population), and rule id -> category, from the
    catalog(s); the model applies to every program."""
    from data_contracts.policy import PROGRAMS
    from rules.catalog import load_catalog

    programs, categories = {"model_outlier": tuple(PROGRAMS)}, {"model_outlier": "model_outlier"}
    for d in (rules_dir, *extra_dirs):
        for r in load_catalog(d):
            programs[r.id], categories[r.id] = r.programs, r.category
    return programs, categories


def _group_label(col: pl.Expr) -> pl.Expr:
    """A group's name in the audit's rows: its value as text; a missing value is the group "None"."""
    return col.cast(pl.String).fill_null("None").alias("group")


def _key_programs(keys: dict[str, tuple]) -> pl.DataFrame:
    """(key, program_code): the programs each key's population is paid in."""
    return pl.DataFrame([(k, p) for k, progs in keys.items() for p in progs],
                        schema={"key": pl.String, "program_code": pl.String}, orient="row")


def _counts(pop: pl.DataFrame, warned: pl.DataFrame, key_col: str, keys: dict[str, tuple]) -> dict[str, pl.DataFrame]:
    """Per view: long rows (key, group, persons, warned) for every group with persons in the key's
    population. Person views (county, township, sex, age band) count persons paid in one of the key's
    programs and, of them, those a warning of the key names; the program view counts (person,
    program) pairs in the key's programs and, of them, those a warning of the key names with that
    program, or with none. The population is first folded into its distinct (groups, set of
    programs) with a count, so that a city of millions is a few thousand rows before it meets the
    keys; the warned are few and counted one by one. Joins and group-bys in polars."""
    schema = {"key": pl.String, "group": pl.String, "persons": pl.Int64, "warned": pl.Int64}
    if not keys or pop.height == 0:
        return {v: pl.DataFrame(schema=schema) for v in VIEWS}
    kp = _key_programs(keys)
    person_cols = [VIEW_COLUMN[v] for v in VIEWS if v != "program"]
    w = warned.filter(pl.col("id_number").is_not_null() & pl.col(key_col).is_in(list(keys))).select(
        pl.col(key_col).alias("key"), "id_number", "program_code")
    persons = _persons(pop).with_columns(progset=pl.col("programs").list.join(","))
    progset_keys = (persons.select("progset", pl.col("programs").alias("program_code")).unique("progset")
                    .explode("program_code").join(kp, on="program_code").select("progset", "key").unique())
    folded = persons.group_by(*person_cols, "progset").len("n")
    warned_persons = (w.select("key", "id_number").unique().join(persons, on="id_number")
                      .join(progset_keys, on=["progset", "key"], how="semi"))
    hit_pairs = pl.concat([
        w.filter(pl.col("program_code").is_not_null()).join(pop.select("id_number", "program_code"),
                                                             on=["id_number", "program_code"]),
        w.filter(pl.col("program_code").is_null()).drop("program_code").join(
            pop.select("id_number", "program_code"), on="id_number").select("key", "id_number", "program_code"),
    ]).unique()  # a pair outside the key's programs meets no row of n below
    out = {}
    for view in VIEWS:
        col = VIEW_COLUMN[view]
        if view == "program":
            n = pop.group_by(col).len("persons").join(kp, on="program_code")
            x = hit_pairs.group_by("key", col).len("warned")
        else:
            n = folded.join(progset_keys, on="progset").group_by("key", col).agg(pl.col("n").sum().alias("persons"))
            x = warned_persons.group_by("key", col).len("warned")
        out[view] = (n.join(x, on=["key", col], how="left", nulls_equal=True)
                     .select("key", _group_label(pl.col(col)),
                             pl.col("persons").cast(pl.Int64), pl.col("warned").fill_null(0).cast(pl.Int64)))
    return out


def _with_rest(df: pl.DataFrame, *cols: str) -> pl.DataFrame:
    """Per (level, key): each column's total over every group (``all_<c>``) and over the other groups
    than the row's (``rest_<c>``), what a group is compared with."""
    tot = df.group_by("level", "key").agg(pl.col(c).sum().alias(f"all_{c}") for c in cols)
    return df.join(tot, on=["level", "key"]).with_columns(
        **{f"rest_{c}": pl.col(f"all_{c}") - pl.col(c) for c in cols})


def _rate_tests(df: pl.DataFrame) -> pl.DataFrame:
    """Rates, ratio to the rest, expected count and the exact two-sided test of two rates."""
    df = _with_rest(df, "persons", "warned").with_columns(
        rate_per_1000=(1000 * pl.col("warned") / pl.col("persons")).round(3),
        rest_rate_per_1000=(1000 * pl.col("rest_warned") / pl.col("rest_persons")).round(3),
        expected=(pl.col("persons") * pl.col("all_warned") / pl.col("all_persons")).round(2),
    ).with_columns(
        rate_ratio=pl.when(pl.col("rest_warned") > 0).then(
            (pl.col("warned") / pl.col("persons")) / (pl.col("rest_warned") / pl.col("rest_persons"))).round(3),
    )
    # one exact test per (key, group) aggregate, all groups at once
    w, rw, n, rn = (df[c].to_numpy().astype(np.int64) for c in ("warned", "rest_warned", "persons", "rest_persons"))
    tested = ((w + rw) > 0) & (rn > 0) & (n > 0)
    p = np.ones(len(w))
    if tested.any():
        p[tested] = binomtest_two_sided(w[tested], (w + rw)[tested], n[tested] / (n + rn)[tested])
    return df.with_columns(p_value=pl.Series(p, dtype=pl.Float64))


def _search(a, d: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """scipy's ``_binary_search_for_binom_tst`` for many searches at once: the same steps and
    comparisons, element by element (``a(x)`` is evaluated for all of them)."""
    lo, hi = lo.astype(np.float64), hi.astype(np.float64)
    found, res = np.zeros(len(d), dtype=bool), np.zeros(len(d))
    while True:
        active = (lo < hi) & ~found
        if not active.any():
            break
        mid = lo + (hi - lo) // 2
        midval = a(mid)
        lt, gt = active & (midval < d), active & (midval > d)
        hit = active & ~lt & ~gt
        lo, hi = np.where(lt, mid + 1, lo), np.where(gt, mid - 1, hi)
        res[hit], found = mid[hit], found | hit
    return np.where(found, res, np.where(a(lo) <= d, lo, lo - 1))


def binomtest_two_sided(k: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``scipy.stats.binomtest(k, n, p).pvalue`` (two-sided) for arrays, with 0 < p < 1: scipy's own
    algorithm (the same pmf, cdf and sf, the same search for the other tail), vectorised over the
    tests instead of one call each (816 tests took 0.6 s of every night at 1M persons). A test
    compares it with scipy's on a grid of cases."""
    from scipy.stats import binom

    k, n, p = (np.asarray(x) for x in (k, n, p))
    out = np.ones(len(k))
    d = binom.pmf(k, n, p)
    rerr = 1 + 1e-7
    less, more = k < p * n, k > p * n  # k == p * n: 1
    if less.any():
        kl, nl, pr, dl = k[less], n[less], p[less], d[less]
        ix = _search(lambda x: -binom.pmf(x, nl, pr), -dl * rerr, np.ceil(pr * nl), nl)
        y = nl - ix + (dl * rerr == binom.pmf(ix, nl, pr)).astype(np.int64)
        out[less] = binom.cdf(kl, nl, pr) + binom.sf(nl - y, nl, pr)
    if more.any():
        km, nm, pm, dm = k[more], n[more], p[more], d[more]
        ix = _search(lambda x: binom.pmf(x, nm, pm), dm * rerr, np.zeros(len(km)), np.floor(pm * nm))
        y = ix + 1
        out[more] = binom.cdf(y - 1, nm, pm) + binom.sf(km - 1, nm, pm)
    return np.minimum(1.0, out)


def _share_tests(df: pl.DataFrame) -> pl.DataFrame:
    from scipy.stats import fisher_exact

    df = _with_rest(df, "concluded", "confirmed").with_columns(
        confirmed_share=pl.when(pl.col("concluded") > 0).then(pl.col("confirmed") / pl.col("concluded")).round(4),
        rule_confirmed_share=pl.when(pl.col("all_concluded") > 0).then(
            pl.col("all_confirmed") / pl.col("all_concluded")).round(4),
        rest_confirmed_share=pl.when(pl.col("rest_concluded") > 0).then(
            pl.col("rest_confirmed") / pl.col("rest_concluded")).round(4),
    ).with_columns(
        share_ratio=pl.when(pl.col("rest_confirmed_share") > 0).then(
            pl.col("confirmed_share") / pl.col("rest_confirmed_share")).round(3),
    )
    p = [fisher_exact([[c, n - c], [rc, rn - rc]]).pvalue if n > 0 and rn > 0 else 1.0
         for c, n, rc, rn in df.select("confirmed", "concluded", "rest_confirmed", "rest_concluded").iter_rows()]
    return df.with_columns(share_p_value=pl.Series(p, dtype=pl.Float64))


def _bh(p: np.ndarray) -> np.ndarray:
    from scipy.stats import false_discovery_control

    return false_discovery_control(p, method="bh") if len(p) else p


def _units(con, as_of: dt.date) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The population; the warnings raised by the batch of `as_of` (per rule); every concluded
    warning (per rule), confirmed = 属实 or 已整改 (confirmed, rectified), else 不属实 (cleared)."""
    cols = "rule_id, category, warning_id, id_number, program_code"
    pop = warehouse.frame(con, "SELECT * FROM audit_population")
    warned = warehouse.frame(con, f"SELECT {cols}, concluded FROM audit_rule_warnings WHERE last_seen = $as_of",
                             {"as_of": as_of})
    concluded = warehouse.frame(con, f"SELECT {cols}, concluded IN ('confirmed', 'rectified') AS confirmed "
                                     "FROM audit_rule_warnings WHERE concluded IS NOT NULL")
    return pop, warned, concluded


def _keys(warned: pl.DataFrame, programs_of: dict) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(level, key) -> programs: one per rule, one per category (the union of its rules' programs)."""
    rules = sorted(set(warned["rule_id"].to_list()) | set(programs_of))
    cat_of = dict(warned.select("rule_id", "category").unique("rule_id").iter_rows())
    by_rule = {r: programs_of.get(r, ()) for r in rules if r in cat_of or r in programs_of}
    by_cat: dict[str, set] = {}
    for r, c in cat_of.items():
        by_cat.setdefault(c, set()).update(programs_of.get(r, ()))
    return by_rule, {c: tuple(sorted(p)) for c, p in by_cat.items()}


def _persons(pop: pl.DataFrame) -> pl.DataFrame:
    """One row per paid person; a person paid in several programs takes the place of the first
    program in code order (deterministic)."""
    return pop.sort("id_number", "program_code").group_by("id_number", maintain_order=True).agg(
        pl.col("county_code").first(), pl.col("township").first(), pl.col("sex").first(),
        pl.col("age_band").first(), pl.col("program_code").alias("programs"))


def compute(con: duckdb.DuckDBPyConnection, *, as_of: dt.date | None = None, rules_dir: Path | str | None = None,
            extra_rules_dirs: tuple = (), answer_key: Path | str | None = None) -> Audit:
    """The audit of the latest batch's warnings (or of ``as_of``'s). Temp tables only: works on a
    read-only connection. With the ``answer_key`` of a generated city, each row also has the planted
    anomalies' rate ratio in the same group (``planted``, ``planted_ratio``), and each flag says
    whether the facts point the same way (``facts_agree``)."""
    try:
        con.execute("SET enable_progress_bar=false").fetchall()
    except duckdb.Error:
        pass  # inside Jupyter without ipywidgets DuckDB draws no progress bar anyway
    as_of = as_of or _latest_batch(con)
    if as_of is None:
        return Audit(None, None)
    window = _window(as_of)
    with materialised.read_if_current(con):  # v_payment as the rules' table when it is current: 1.9 -> 0.x s at 10M
        warehouse.run(con, "oversight", "audit_population", as_of=as_of, period_from=window[0], period_to=window[1])
    warehouse.run(con, "oversight", "audit_rule_warnings")
    programs_of, category_of = catalog_facts(rules_dir, extra_rules_dirs)
    pop, warned, concluded = _units(con, as_of)
    by_rule, by_cat = _keys(warned, programs_of)

    frames: dict[str, list[pl.DataFrame]] = {v: [] for v in VIEWS}
    for level, key_col, keys in (("rule", "rule_id", by_rule), ("category", "category", by_cat)):
        counted = _counts(pop, warned, key_col, keys)
        for view in VIEWS:
            counts = counted[view].with_columns(level=pl.lit(level), view=pl.lit(view))
            conc = _conclusions(pop, concluded, key_col, view)
            counts = counts.join(conc, on=["key", "group"], how="left").with_columns(
                pl.col("concluded").fill_null(0), pl.col("confirmed").fill_null(0))
            frames[view].append(counts.filter(pl.col("persons") > 0))

    views = {}
    allv = pl.concat([pl.concat(f) for f in frames.values() if f], how="diagonal_relaxed")
    allv = _share_tests(_rate_tests(allv))
    # a view that is the rule's own criterion (age for the age rules) is shown, never flagged
    category = pl.when(pl.col("level") == "rule").then(
        pl.col("key").replace_strict(category_of, default=None, return_dtype=pl.String)).otherwise(pl.col("key"))
    criterion = pl.lit(False)
    for cat, views_ in CRITERION_VIEWS.items():
        criterion = criterion | ((category == cat) & pl.col("view").is_in(list(views_)))
    allv = allv.with_columns(criterion=criterion)
    # Benjamini-Hochberg over every rate test that meets the minimum (and every share test likewise)
    rate_ok = ((pl.col("expected") >= MIN_EXPECTED) & (pl.col("rest_warned") + pl.col("warned") > 0)
               & ~pl.col("criterion"))
    share_ok = (pl.col("concluded") >= MIN_CONCLUDED) & (pl.col("rest_concluded") > 0) & ~pl.col("criterion")
    allv = allv.with_row_index("_i")
    tested = allv.filter(rate_ok)
    q = _bh(tested["p_value"].to_numpy())
    allv = allv.join(tested.select("_i", pl.Series("q_value", q)), on="_i", how="left")
    stested = allv.filter(share_ok)
    sq = _bh(stested["share_p_value"].to_numpy())
    allv = allv.join(stested.select("_i", pl.Series("share_q_value", sq)), on="_i", how="left").drop("_i")
    allv = allv.with_columns(
        flagged_rate=(rate_ok & ((pl.col("rate_ratio") > RATIO_HIGH) | (pl.col("rate_ratio") < RATIO_LOW))
                      & (pl.col("q_value") < FDR)).fill_null(False),
        flagged_confirmed=(share_ok & (pl.col("share_ratio") < SHARE_RATIO)
                           & (pl.col("share_q_value") < FDR)).fill_null(False),
    ).with_columns(
        reason=pl.when(pl.col("flagged_rate")).then(pl.format(
            "rate {} per 1000 vs {} for the rest (ratio {}, expected {} warned, q {})",
            pl.col("rate_per_1000"), pl.col("rest_rate_per_1000"), pl.col("rate_ratio"), pl.col("expected"),
            pl.col("q_value").round(5))).otherwise(pl.lit(""))
        + pl.when(pl.col("criterion")).then(pl.lit("not tested: the rule's own criterion")).otherwise(pl.lit(""))
        + pl.when(pl.col("flagged_confirmed")).then(pl.format(
            "{}confirmed share {} vs {} for the rest (ratio {}, {} concluded, q {})",
            pl.when(pl.col("flagged_rate")).then(pl.lit("; ")).otherwise(pl.lit("")),
            pl.col("confirmed_share"), pl.col("rest_confirmed_share"), pl.col("share_ratio"),
            pl.col("concluded"), pl.col("share_q_value").round(5))).otherwise(pl.lit("")),
    )
    allv = _explained_by_township(allv)
    allv = _with_facts(allv, pop, answer_key, by_cat, category_of)
    order = ["level", "key", "view", "group", "persons", "warned", "rate_per_1000", "rest_persons", "rest_warned",
             "rest_rate_per_1000", "rate_ratio", "expected", "p_value", "q_value", "flagged_rate", "concluded",
             "confirmed", "confirmed_share", "rest_confirmed_share", "rule_confirmed_share", "share_ratio",
             "share_p_value", "share_q_value", "flagged_confirmed", "criterion", "planted", "planted_ratio",
             "facts_agree", "reason"]
    allv = allv.with_columns(pl.col("p_value", "q_value", "share_p_value", "share_q_value").round(6))
    for view in VIEWS:
        views[view] = allv.filter(pl.col("view") == view).select(order).sort("level", "key", "group")
    return Audit(as_of, window, views, _coverage(pop, warned))


def _explained_by_township(allv: pl.DataFrame) -> pl.DataFrame:
    """Townships nest in counties: a county flagged only because a flagged township of it is, is not
    flagged itself. Without its flagged townships, the county must still pass the same test against
    the rest of the population (ratio, minimum, uncorrected p < 5%) to stay flagged."""
    from scipy.stats import binomtest, fisher_exact

    def rate_still(n, w, rn, rw):
        if n <= 0 or rw == 0:
            return False
        ratio, expected = (w / n) / (rw / rn), n * (w + rw) / (n + rn)
        p = binomtest(int(w), int(w + rw), n / (n + rn)).pvalue
        return expected >= MIN_EXPECTED and (ratio > RATIO_HIGH or ratio < RATIO_LOW) and p < FDR

    def share_still(n, c, rn, rc):
        if n < MIN_CONCLUDED or rn == 0 or rc == 0:
            return False
        ratio = (c / n) / (rc / rn)
        return ratio < SHARE_RATIO and fisher_exact([[c, n - c], [rc, rn - rc]]).pvalue < FDR

    for flag, cols, still in (("flagged_rate", ("persons", "warned", "rest_persons", "rest_warned"), rate_still),
                              ("flagged_confirmed", ("concluded", "confirmed", "rest_concluded", "rest_confirmed"),
                               share_still)):
        n_col, x_col = cols[0], cols[1]
        towns = allv.filter((pl.col("view") == "township") & pl.col(flag)).select(
            "level", "key", pl.col("group").str.split("/").list.first().alias("county"), pl.col("group").alias("town"),
            pl.col(n_col).alias("t_n"), pl.col(x_col).alias("t_x"))
        if towns.height == 0:
            continue
        c = allv.filter((pl.col("view") == "county") & pl.col(flag)).join(
            towns.group_by("level", "key", "county").agg(pl.col("t_n").sum(), pl.col("t_x").sum(),
                                                         pl.col("town").sort().str.join(", ")),
            left_on=["level", "key", "group"], right_on=["level", "key", "county"], how="inner")
        explained = [(level, key, group, town) for level, key, group, n, x, rn, rx, tn, tx, town in c.select(
            "level", "key", "group", *cols, "t_n", "t_x", "town").iter_rows()
            if not still(n - tn, x - tx, rn, rx)]
        if not explained:
            continue
        e = pl.DataFrame(explained, schema=["level", "key", "group", "_town"], orient="row").with_columns(
            view=pl.lit("county"))
        allv = allv.join(e, on=["level", "key", "view", "group"], how="left").with_columns(
            pl.when(pl.col("_town").is_not_null()).then(False).otherwise(pl.col(flag)).alias(flag),
            reason=pl.when(pl.col("_town").is_not_null()).then(
                pl.format("{}; not flagged: explained by flagged township {}", pl.col("reason"), pl.col("_town"))
            ).otherwise(pl.col("reason")),
        ).drop("_town")
    return allv


def _with_facts(allv: pl.DataFrame, pop: pl.DataFrame, answer_key, by_cat: dict, category_of: dict) -> pl.DataFrame:
    """The planted anomalies of a generated city's answer key (persons), counted like warnings of their
    category: per (category, view, group) how many, and their rate ratio to the rest. A rule's row
    takes its category's. ``facts_agree``: a flagged group's rate ratio and the planted one lie on
    the same side of 1 (the warnings differ where the facts differ)."""
    none = allv.with_columns(planted=pl.lit(None, pl.Int64), planted_ratio=pl.lit(None, pl.Float64),
                             facts_agree=pl.lit(None, pl.Boolean))
    if answer_key is None or not by_cat:
        return none
    key = pl.read_csv(answer_key, infer_schema=False).filter(
        (pl.col("kind") == "anomaly") & (pl.col("subject_type") == "person"))
    facts = key.select("category", pl.col("subject_id").alias("id_number"), "program_code")
    counted = _counts(pop, facts, "category", by_cat)
    parts = [counted[view].with_columns(view=pl.lit(view)) for view in VIEWS]
    f = pl.concat(parts).with_columns(
        all_n=pl.col("persons").sum().over("key", "view"), all_p=pl.col("warned").sum().over("key", "view"),
    ).select(
        pl.col("key").alias("_fact_key"), "view", "group", pl.col("warned").alias("planted"),
        pl.when(pl.col("all_p") > pl.col("warned")).then(
            ((pl.col("warned") / pl.col("persons"))
             / ((pl.col("all_p") - pl.col("warned")) / (pl.col("all_n") - pl.col("persons")))).round(3))
        .when(pl.col("warned") > 0).then(float("inf"))  # every planted case is in the group
        .alias("planted_ratio"))
    fact_key = pl.when(pl.col("level") == "rule").then(
        pl.col("key").replace_strict(category_of, default=None, return_dtype=pl.String)).otherwise(pl.col("key"))
    out = allv.with_columns(_fact_key=fact_key).join(f, on=["_fact_key", "view", "group"], how="left").drop("_fact_key")
    agree = (((pl.col("rate_ratio") > 1) & (pl.col("planted_ratio") > 1))
             | ((pl.col("rate_ratio") < 1) & (pl.col("planted_ratio") < 1))).fill_null(False)
    return out.with_columns(facts_agree=pl.when(pl.col("flagged_rate")).then(agree).otherwise(None))


def _conclusions(pop: pl.DataFrame, concluded: pl.DataFrame, key_col: str, view: str) -> pl.DataFrame:
    """Per (key, group): concluded and confirmed warnings of persons in the group (program view: the
    warning's program). Warnings of persons outside the paid population are left out."""
    schema = {"key": pl.String, "group": pl.String, "concluded": pl.Int64, "confirmed": pl.Int64}
    if concluded.height == 0:
        return pl.DataFrame(schema=schema)
    if view == "program":
        g = concluded.filter(pl.col("program_code").is_not_null()).with_columns(
            pl.col("program_code").alias("group"))
    else:
        persons = _persons(pop).select("id_number", pl.col(VIEW_COLUMN[view]).alias("group"))
        g = concluded.join(persons, on="id_number", how="inner")
    g = g.with_columns(_group_label(pl.col("group")))  # as _counts labels it
    return g.group_by(pl.col(key_col).alias("key"), "group").agg(
        pl.len().cast(pl.Int64).alias("concluded"), pl.col("confirmed").sum().cast(pl.Int64).alias("confirmed"))


def _coverage(pop: pl.DataFrame, warned: pl.DataFrame) -> pl.DataFrame:
    paid = pop["id_number"].unique().implode()
    return warned.group_by("rule_id", "category").agg(
        pl.len().alias("warnings"),
        pl.col("id_number").is_null().sum().alias("no_person"),
        (pl.col("id_number").is_not_null() & ~pl.col("id_number").is_in(paid)).sum().alias("outside_paid_population"),
    ).sort("rule_id")


def audit_warehouse(path: Path | str, **kw) -> Audit:
    with warehouse.connect(path, read_only=True) as con:  # a warehouse, or a batch's working copy
        return compute(con, **kw)


def method_text() -> str:
    return (f"Rates per 1,000 persons paid in the audit window in the programs the rule applies to. Flagged: "
            f"rate ratio to the rest of that population above {RATIO_HIGH} or below {RATIO_LOW}, at least "
            f"{MIN_EXPECTED:g} warned persons expected in the group at the overall rate, and a two-sided exact "
            f"test of two rates (conditional binomial) significant at a {FDR:.0%} false discovery rate "
            f"(Benjamini-Hochberg over all tests). Confirmed share: flagged below {SHARE_RATIO} times the rest's "
            f"share with at least {MIN_CONCLUDED} conclusions in the group, Fisher's exact test, same correction. "
            f"Sex and age are read for this audit only.")
