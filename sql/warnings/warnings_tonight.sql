-- grain: one row per (category, subject_type, subject_id, program_code, finding_key) raised in batch
-- $batch_id. Rule hits and model hits merged: several hits of one key (two rules of one category
-- on the same subject, e.g. a household's car and its shop) become one warning. They rest on the
-- same payments, so the warning's amount and record count are the largest hit's, not their sum.
-- Its severity is the highest of its hits' and its score the model's score of the person or the
-- severity's floor, whichever is higher (ranks and floors: policy_severity, POLICY.md's severities
-- from data_contracts/policy.py, registered by data_contracts.warehouse.register_policy).
-- rule_params: per rule, the parameters bound for the hit's scope (warning_rule_params, made from
-- the catalog by casework/lifecycle.py; the most specific scope of county|program wins, as in
-- rules/compile.py), so that the warning can be recomputed; null for the model.
CREATE OR REPLACE TEMP TABLE warnings_tonight AS
WITH hit_scopes AS (
    SELECT DISTINCT rule_id, rule_version, county_code, program_code FROM rule_hits WHERE batch_id = $batch_id
),
resolved AS (
    SELECT s.rule_id, s.rule_version, s.county_code, s.program_code, p.params
    FROM hit_scopes s
    JOIN warning_rule_params p ON p.rule_id = s.rule_id AND p.rule_version = s.rule_version
        AND p.scope IN (coalesce(s.county_code, '') || '|' || coalesce(s.program_code, ''),
                        coalesce(s.county_code, '') || '|*', '*|' || coalesce(s.program_code, ''), '*|*')
    QUALIFY row_number() OVER (PARTITION BY s.rule_id, s.rule_version, s.county_code, s.program_code
                               ORDER BY p.specificity DESC) = 1
),
hits AS (
    SELECT h.rule_id || '@v' || h.rule_version AS rule_ref, h.category, h.severity, h.subject_type, h.subject_id,
           h.id_number, h.name, h.program_code, h.county_code, h.township, h.village, h.first_period,
           h.last_period, h.amount_at_risk, h.evidence, h.evidence_size, h.finding_key, r.params
    FROM rule_hits h
    LEFT JOIN resolved r ON r.rule_id = h.rule_id AND r.rule_version = h.rule_version
        AND r.county_code IS NOT DISTINCT FROM h.county_code AND r.program_code IS NOT DISTINCT FROM h.program_code
    WHERE h.batch_id = $batch_id
    UNION ALL
    SELECT rule_id || '@v' || rule_version, category, severity, subject_type, subject_id, id_number, name,
           program_code, county_code, township, village, first_period, last_period, amount_at_risk, evidence,
           evidence_size, NULL, NULL
    FROM model_hits WHERE batch_id = $batch_id
),
merged AS (
    SELECT category, subject_type, subject_id, program_code, finding_key,
           string_agg(DISTINCT rule_ref, ',' ORDER BY rule_ref) AS rule_id,
           arg_max(p.severity, p.rank) AS severity,
           max(p.score_floor) AS severity_floor,
           bool_or(category = 'model_outlier') AS from_model,
           min({'i': id_number, 'n': name}) AS who,  -- one hit's person, not a mix
           min({'c': county_code, 't': township, 'v': village}) AS place,  -- one hit's place, not a mix
           min(first_period) AS first_period, max(last_period) AS last_period,
           max(amount_at_risk)::DECIMAL(18, 2) AS amount_at_risk,
           string_agg(evidence, '；' ORDER BY evidence) AS evidence,
           max(evidence_size)::INTEGER AS evidence_size,
           '{' || string_agg(DISTINCT '"' || rule_ref || '": ' || coalesce(params, 'null'), ', '
                             ORDER BY '"' || rule_ref || '": ' || coalesce(params, 'null')) || '}' AS rule_params
    FROM hits
    LEFT JOIN policy_severity p USING (severity)
    GROUP BY category, subject_type, subject_id, program_code, finding_key
)
SELECT
    'W' || upper(substr(sha256((SELECT value FROM settings WHERE key = 'warning_id_salt') || '|' || m.category
        || '|' || m.subject_type || '|' || m.subject_id || '|' || coalesce(m.program_code, '')
        || coalesce('|' || m.finding_key, '')), 1, 16)) AS warning_id,
    m.* EXCLUDE (severity_floor, from_model, place, who, finding_key),
    m.who.i AS id_number, m.who.n AS name,
    m.place.c AS county_code, m.place.t AS township, m.place.v AS village,
    round(CASE WHEN m.from_model THEN coalesce(s.score, 0)
               ELSE greatest(m.severity_floor, coalesce(s.score, 0)) END, 4)::DOUBLE AS score
FROM merged m
LEFT JOIN model_scores s ON s.batch_id = $batch_id AND s.id_number = m.who.i
