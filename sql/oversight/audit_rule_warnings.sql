-- grain: one row per (rule, warning), a warning merged from two rules counting for each, with the
-- person it names, its program, the batch date it was last raised and the verifiers' latest
-- conclusion (dispositions) if any. The audit reads two slices: the warnings raised by the batch
-- of its date (the rates; those naming no person, an account or a worker, have a null id_number
-- and are left out), and every concluded warning whenever it was raised (the confirmed share).
CREATE OR REPLACE TEMP TABLE audit_rule_warnings AS
WITH latest AS (
    SELECT warning_id, status AS concluded
    FROM dispositions
    QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY recorded_at DESC, line DESC) = 1
)
SELECT
    split_part(r.rule_ref, '@v', 1) AS rule_id, w.category, w.warning_id, w.id_number, w.program_code,
    w.last_seen, l.concluded
FROM warnings w, unnest(string_split(w.rule_id, ',')) AS r(rule_ref)
LEFT JOIN latest l ON l.warning_id = w.warning_id
