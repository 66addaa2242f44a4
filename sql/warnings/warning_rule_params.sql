-- grain: one row per scope of every rule of the catalog: its parameters merged for that scope
-- (JSON), as rules/compile.py binds them; specificity 3 county|program, 2 county|*, 1 *|program,
-- 0 *|*. A temp table made each night from the catalog (casework/lifecycle.py fills it):
-- warnings_tonight.sql records the most specific scope's parameters on each warning.
CREATE OR REPLACE TEMP TABLE warning_rule_params (
    rule_id VARCHAR,
    rule_version INTEGER,
    scope VARCHAR,
    specificity INTEGER,
    params VARCHAR
)
