"""The rule catalog: YAML rules (one file per rule), their compiler and executor.

Public face only; the work lives in :mod:`rules.catalog` (parse),
:mod:`rules.kinds` (the kinds of rule and the SQL each writes), :mod:`rules.compile` (the hit columns
around it), :mod:`rules.execute` (run; the shared SQL of ``sql/shared/`` through data_contracts.warehouse),
:mod:`rules.names` (Chinese name readings) and :mod:`rules.docs` (CATALOG.md, compiled snapshots).
"""
from rules.catalog import Rule, RuleError, load_catalog
from rules.execute import run_rules

__all__ = ["Rule", "RuleError", "load_catalog", "run_rules"]
