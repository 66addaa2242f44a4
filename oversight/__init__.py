"""Oversight (issue 16): on whom the warnings fall (the outcome audit), and why any one warning
exists (explain, recompute).

Public face only; the work lives in :mod:`oversight.audit` (group rates and tests),
:mod:`oversight.report` (CSV, charts, audit.md, the summary section), :mod:`oversight.explain`
(`sentinel explain`) and :mod:`oversight.recompute` (a warning recomputed from the warehouse).
SQL is in ``sql/oversight/``.
"""
