"""The rule catalog: YAML rules (one file per rule), their compiler and executor.

Public face only; the work lives in :mod:`rules.catalog` (parse), :mod:`rules.compile` (SQL),
:mod:`rules.execute` (run), :mod:`rules.names` (Chinese name matching), :mod:`rules.views`
(the shared SQL in ``sql/``) and :mod:`rules.docs` (CATALOG.md, compiled snapshots).
"""
from rules.catalog import Rule, RuleError, load_catalog
from rules.execute import run_rules

__all__ = ["Rule", "RuleError", "load_catalog", "run_rules"]
