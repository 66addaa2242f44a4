-- Chinese name of a program code, for evidence texts: POLICY.md's names as data_contracts/policy.py
-- holds them, read from the temp table policy_program (data_contracts.warehouse.register_policy,
-- which the rules stage runs first); an unknown code is shown as it is.
CREATE OR REPLACE MACRO program_name(code) AS (
    -- no alias inside: the argument is pasted in, and may name the caller's own aliases (p.program_code)
    coalesce((SELECT policy_program.name_zh FROM policy_program WHERE policy_program.program_code = code), code)
)
