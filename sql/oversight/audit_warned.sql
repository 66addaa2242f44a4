-- grain: one row per (rule, warning) raised by the batch of $as_of (last_seen), one per rule that
-- raised it (a warning merged from two rules counts for each), with the person it names, its
-- program and the verifiers' latest conclusion (dispositions) if any. Warnings that name no
-- person (an account, a worker) have a null id_number and are left out of the rates.
CREATE OR REPLACE TEMP TABLE audit_warned AS
WITH latest AS (
    SELECT warning_id, status AS concluded
    FROM dispositions
    QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY recorded_at DESC, line DESC) = 1
)
SELECT
    split_part(r.rule_ref, '@v', 1) AS rule_id, w.category, w.warning_id, w.id_number, w.program_code,
    l.concluded
FROM warnings w, unnest(string_split(w.rule_id, ',')) AS r(rule_ref)
LEFT JOIN latest l ON l.warning_id = w.warning_id
WHERE w.last_seen = $as_of::DATE
