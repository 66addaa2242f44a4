-- grain: one row per (rule, warning) that the verifiers concluded on (dispositions, latest
-- conclusion per warning), whenever it was raised: the confirmed share counts every conclusion
-- so far. confirmed: 属实 or 已整改 (confirmed, rectified); cleared: 不属实.
CREATE OR REPLACE TEMP TABLE audit_concluded AS
WITH latest AS (
    SELECT warning_id, status AS concluded
    FROM dispositions
    QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY recorded_at DESC, line DESC) = 1
)
SELECT
    split_part(r.rule_ref, '@v', 1) AS rule_id, w.category, w.warning_id, w.id_number, w.program_code,
    l.concluded IN ('confirmed', 'rectified') AS confirmed
FROM warnings w, unnest(string_split(w.rule_id, ',')) AS r(rule_ref)
JOIN latest l ON l.warning_id = w.warning_id
