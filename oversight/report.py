"""Write an :class:`~oversight.audit.Audit`: one CSV per view, the flags, the coverage, PNG charts
and ``audit.md``; and the short section of the nightly summary.md.

Charts are matplotlib PNGs with English axis labels. Group labels are Chinese (township names,
男/女): a CJK font is used when one is installed, otherwise the labels are romanised (pypinyin),
so the charts never depend on a font the machine may not have.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from oversight.audit import MIN_EXPECTED, VIEWS, Audit, method_text

CJK_FONT_NAMES = ("Noto Sans CJK", "Noto Serif CJK", "Source Han", "WenQuanYi", "SimHei", "Microsoft YaHei",
                  "Droid Sans Fallback", "AR PL", "Sarasa", "PingFang")
SEX_EN = {"男": "male", "女": "female"}


def cjk_font() -> str | None:
    """The name of an installed font with Chinese glyphs, or None."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if any(k in f.name for k in CJK_FONT_NAMES):
            return f.name
    return None


def _label(text: str, font: str | None) -> str:
    if font is not None:
        return text
    if text in SEX_EN:
        return SEX_EN[text]
    if text.isascii():
        return text
    from rules.pinyin import lazy_pinyin, load_phrases

    load_phrases()  # place names are words: 长沙 Changsha
    return "".join(w.capitalize() for w in lazy_pinyin(text))


def _table(df: pl.DataFrame) -> str:
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join("" if v is None else str(v) for v in r) + " |" for r in df.iter_rows()]
    return "\n".join(lines)


def heatmap(df: pl.DataFrame, view: str, font: str | None = None):
    """Rate ratio (log2, clipped to +-2) of each rule (rows) in each group (columns); flagged cells
    framed in black; grey where too few warnings are expected to test (or the view is the rule's
    own criterion). A matplotlib figure, or None when no rule warned anyone."""
    import matplotlib.pyplot as plt
    import numpy as np

    d = df.filter((pl.col("level") == "rule") & (pl.col("warned") + pl.col("rest_warned") > 0))
    if d.height == 0:
        return None
    keys = sorted(set(d["key"].to_list()))
    groups = sorted(set(d["group"].to_list()))
    m = np.full((len(keys), len(groups)), np.nan)
    flagged = []
    tested = (pl.col("expected") >= MIN_EXPECTED) & ~pl.col("criterion")
    for k, g, rr, f, t in d.select("key", "group", "rate_ratio", "flagged_rate", tested.alias("t")).iter_rows():
        i, j = keys.index(k), groups.index(g)
        if rr is not None and t:
            m[i, j] = np.log2(max(rr, 0.25))
        if f:
            flagged.append((i, j))
    if font:
        plt.rcParams["font.sans-serif"] = [font, *plt.rcParams["font.sans-serif"]]
    fig, ax = plt.subplots(figsize=(min(max(7.0, 2 + 0.45 * len(groups)), 24), 1.8 + 0.32 * len(keys)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(np.clip(m, -2, 2)), cmap=cmap, vmin=-2, vmax=2, aspect="auto")
    ax.set_xticks(range(len(groups)), [_label(g, font) for g in groups], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(keys)), keys, fontsize=7)
    for i, j in flagged:
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xlabel(view.replace("_", " "))
    ax.set_title(f"Warning rate ratio to the rest, by {view.replace('_', ' ')}\n"
                 f"(log2; framed = flagged; grey = fewer than {MIN_EXPECTED:g} expected, not tested)", fontsize=9)
    fig.colorbar(im, ax=ax, label="log2 rate ratio")
    fig.tight_layout()
    return fig


def rate_bars(df: pl.DataFrame, level: str, key: str, view: str, font: str | None = None):
    """Rate per 1,000 of each group of one (rule or category, view), with the overall rate; flagged
    groups in red. A matplotlib figure."""
    import matplotlib.pyplot as plt

    d = df.filter((pl.col("level") == level) & (pl.col("key") == key)).sort("group")
    overall = 1000 * d["warned"].sum() / max(d["persons"].sum(), 1)
    fig, ax = plt.subplots(figsize=(8, 0.3 * d.height + 1.8))
    colors = ["#c0392b" if f else "#7f8c8d" for f in d["flagged_rate"].to_list()]
    ax.barh([_label(g, font) for g in d["group"].to_list()], d["rate_per_1000"].to_list(), color=colors)
    ax.axvline(overall, color="black", linestyle="--", linewidth=1, label=f"overall {overall:.2f}")
    ax.set_xlabel("warnings per 1,000 paid persons")
    ax.set_ylabel(view.replace("_", " "))
    ax.set_title(f"{key}: rate by {view.replace('_', ' ')} (red = flagged)")
    ax.legend(loc="lower right")
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def _save(fig, path: Path) -> bool:
    import matplotlib.pyplot as plt

    if fig is None:
        return False
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def write(audit: Audit, out_dir: Path | str) -> dict:
    """CSV per view, flags.csv, coverage.csv, PNGs and audit.md under ``out_dir``. Counts only: no
    name and no ID number is in any of them."""
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever the caller's backend
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    font = cjk_font()
    files = []
    for view, df in audit.views.items():
        df.write_csv(out / f"audit_{view}.csv")
        files.append(f"audit_{view}.csv")
    flags = audit.flags
    if flags.height or audit.views:
        flags.write_csv(out / "audit_flags.csv")
    if audit.coverage is not None:
        audit.coverage.write_csv(out / "audit_coverage.csv")
    charts = []
    for view, df in audit.views.items():
        if _save(heatmap(df, view, font), out / f"audit_{view}.png"):
            charts.append((view, f"audit_{view}.png"))
    flag_charts = []
    for i, (level, key, view) in enumerate(flags.select("level", "key", "view").unique(maintain_order=True)
                                            .head(12).iter_rows()):
        name = f"flag_{i + 1}_{level}_{key}_{view}.png"
        _save(rate_bars(audit.views[view], level, key, view, font), out / name)
        flag_charts.append((level, key, view, name))
    (out / "audit.md").write_text(markdown(audit, charts, flag_charts), encoding="utf-8")
    return {"files": files, "charts": len(charts) + len(flag_charts), "flags": flags.height,
            "font": font or "none (labels romanised)"}


def flags_table(audit: Audit) -> str:
    f = audit.flags
    if f.height == 0:
        return "No group flagged."
    cols = ["level", "key", "view", "group", "persons", "warned", "rate_per_1000", "rest_rate_per_1000",
            "rate_ratio", "expected"]
    if f["planted_ratio"].is_not_null().any():  # a generated city's answer key was given
        cols += ["planted", "planted_ratio", "facts_agree"]
    return _table(f.select(*cols, "reason"))


def markdown(audit: Audit, charts: list, flag_charts: list) -> str:
    if audit.as_of is None:
        return "# Outcome audit\n\nNo warnings yet: nothing to audit.\n"
    parts = [
        f"# Outcome audit — warnings of {audit.as_of}",
        f"Audit window {audit.window[0]}..{audit.window[1]}. {method_text()}",
        "## Per category",
        _table(per_key(audit, "category")),
        "## Per rule",
        _table(per_key(audit, "rule")),
        "## Flagged groups",
        flags_table(audit),
        "## Coverage (warnings not in the rates)",
        "Warnings that name no person (account, worker) or a person not paid in the window "
        "(e.g. eligible_not_receiving, training claims and home-care orders, which are not in payments).",
        _table(audit.coverage) if audit.coverage is not None and audit.coverage.height else "none",
        "## Charts",
    ]
    for view, png in charts:
        parts.append(f"![rate ratio by {view}]({png})")
    for level, key, view, png in flag_charts:
        parts.append(f"![{level} {key} by {view}]({png})")
    parts.append("## Tables\n\n" + "\n".join(f"- [{v}](audit_{v}.csv)" for v in VIEWS)
                 + "\n- [flags](audit_flags.csv)\n- [coverage](audit_coverage.csv)")
    return "\n\n".join(parts) + "\n"


def per_key(audit: Audit, level: str = "category") -> pl.DataFrame:
    """One row per category (or rule): persons warned in its population, the population, the rate
    per 1,000, how many group rates were tested (enough expected) and how many flagged."""
    allv = pl.concat(list(audit.views.values()))
    lv = allv.filter(pl.col("level") == level)
    totals = lv.filter(pl.col("view") == "county").group_by("key").agg(
        pl.col("warned").sum(), pl.col("persons").sum().alias("paid_persons"))
    tests = lv.group_by("key").agg(pl.col("q_value").is_not_null().sum().alias("groups_tested"),
                                   (pl.col("flagged_rate") | pl.col("flagged_confirmed")).sum().alias("flagged"))
    return totals.join(tests, on="key", how="left").with_columns(
        rate_per_1000=(1000 * pl.col("warned") / pl.col("paid_persons")).round(3)).select(
        pl.col("key").alias(level), "warned", "paid_persons", "rate_per_1000", "groups_tested", "flagged").sort(level)


def summary_section(audit: Audit, model_card: Path | None = None) -> str:
    """The nightly summary.md's section: flagged groups (counts only) and the model card's link."""
    lines = ["## Oversight", f"Outcome audit of tonight's warnings ({method_text()})"]
    if audit.as_of is None:
        lines.append("No warnings: nothing audited.")
    else:
        conc = sum(int(v["concluded"].sum()) for v in audit.views.values())
        lines.append(f"{sum(v.height for v in audit.views.values())} group rates checked; "
                     f"{audit.flags.height} flagged; conclusions so far counted: {'yes' if conc else 'none yet'}. "
                     "Full tables and charts: `sentinel audit --warehouse W --out DIR`.")
        lines.append(_table(per_key(audit)))
        if audit.coverage is not None and audit.coverage.height:
            cov = audit.coverage
            lines.append(f"Not in the rates: {int(cov['no_person'].sum())} warnings that name no person (an account, "
                         f"a worker) and {int(cov['outside_paid_population'].sum())} that name a person not paid in "
                         "the window (eligible_not_receiving, training claims, home-care orders).")
        lines.append("Flagged groups:")
        lines.append(flags_table(audit))
    if model_card is not None:
        lines.append(f"Model card: [{model_card}]({model_card.as_uri() if model_card.is_absolute() else model_card})")
    return "\n\n".join(lines)
