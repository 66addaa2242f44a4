"""Generated artefacts of the catalog, checked by tests so that they never drift:

- ``rules/CATALOG.md``: every rule in Chinese and English (``python -m rules generate``);
- ``rules/compiled/<id>.sql``: each rule's compiled SQL, so that a reviewer sees in the diff when
  a rule's SQL changes (``python -m rules generate``). Never edited by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

from rules.catalog import RULES_DIR, Rule, load_catalog
from rules.compile import compile_rule

CATALOG_MD = RULES_DIR / "CATALOG.md"
COMPILED_DIR = RULES_DIR / "compiled"


def _value(v) -> str:
    return json.dumps(v, ensure_ascii=False)


def render_catalog(rules: list[Rule]) -> str:
    out = ["# 预警规则目录 / Rule catalog", "",
           "Generated from `rules/*.yaml` by `python -m rules generate`; do not edit by hand.", "",
           "每条规则一个 YAML 文件（文件名即规则编号）；参数以 DuckDB 查询参数 `$name` 绑定，不拼入 SQL。"
           "按区县/项目的参数覆盖：规则对每个覆盖范围各运行一次，只保留其结果行（按结果行的 county_code、"
           "program_code 归属最具体的覆盖范围）。编译后的 SQL 见 `rules/compiled/`。", "",
           "One YAML file per rule (file name = id). Parameters are bound as DuckDB query parameters `$name`, "
           "never pasted into SQL. Per-county/per-program overrides: the rule runs once per override scope with "
           "that scope's merged parameters and keeps the hit rows whose county_code/program_code resolve to it "
           "(the most specific override wins; a rule reporting one county for a finding that spans several "
           "resolves by the county it reports). The compiled SQL is in `rules/compiled/`.", "",
           "| 规则 rule | 版本 | 类别 category | 等级 | 标题 | title | 项目 programs |", "|---|---|---|---|---|---|---|"]
    for r in rules:
        out.append(f"| [`{r.id}`](#{r.id}) | {r.version} | {r.category} | {r.severity} | {r.title['zh']} | "
                   f"{r.title['en']} | {', '.join(r.programs)} |")
    for r in rules:
        out += ["", f"## {r.id}", "", f"**{r.title['zh']}** / {r.title['en']}", "",
                f"- 类别 category: `{r.category}`; 风险等级 severity: `{r.severity}`; 版本 version: {r.version}",
                f"- 项目 programs: {', '.join(r.programs)}",
                f"- 类型 kind: `{r.kind}`" + ("（手写 SQL，见规则文件中的说明 / hand-written SQL: the rule file says why）"
                                             if r.kind == "query" else ""),
                f"- 所需数据 requires: {', '.join(r.requires)} (跳过 skipped when one was not delivered)", "",
                r.description["zh"], "", r.description["en"], ""]
        if r.params:
            out += ["| 参数 parameter | 默认值 default |", "|---|---|"]
            out += [f"| `{k}` | {_value(v)} |" for k, v in r.params.items()]
            out.append("")
        if r.overrides:
            out += ["| 覆盖 override (county / program) | 参数 parameters |", "|---|---|"]
            out += [f"| {o.county or '*'} / {o.program or '*'} | {_value(o.params)} |" for o in r.overrides]
            out.append("")
        out += [f"预警依据模板 evidence: `{r.evidence}`"]
    return "\n".join(out) + "\n"


def compiled_files(rules: list[Rule]) -> dict[str, str]:
    return {f"{r.id}.sql": compile_rule(r).sql + "\n" for r in rules}


def write_all(rules_dir: Path | None = None) -> list[Path]:
    rules = load_catalog(rules_dir)
    CATALOG_MD.write_text(render_catalog(rules), encoding="utf-8")
    COMPILED_DIR.mkdir(exist_ok=True)
    files = compiled_files(rules)
    for old in COMPILED_DIR.glob("*.sql"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (COMPILED_DIR / name).write_text(text, encoding="utf-8")
    return [CATALOG_MD, COMPILED_DIR]


def listing(rules: list[Rule]) -> str:
    """What ``sentinel rules`` prints: one line per rule."""
    w = max(len(r.id) for r in rules)
    lines = [f"{'id':<{w}}  ver  {'category':<22}  {'severity':<8}  title"]
    for r in rules:
        lines.append(f"{r.id:<{w}}  {r.version:>3}  {r.category:<22}  {r.severity:<8}  {r.title['zh']} / {r.title['en']}")
    return "\n".join(lines)
