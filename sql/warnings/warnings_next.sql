-- grain: one row per warning ever raised; the state after batch $batch_id (dated $as_of).
-- Status: new (first seen tonight), open (seen before and again), resolved (evidence stopped),
-- confirmed / cleared / rectified (the verifiers'). A cleared or rectified warning reopens only
-- when its evidence grows past what the verifier saw: a later period, more money, more records.
-- rule_params, raised_batch_id (the last batch that raised it), first_batch_id: what raised it.
CREATE OR REPLACE TEMP TABLE warnings_next AS
SELECT
    coalesce(t.warning_id, w.warning_id) AS warning_id,
    coalesce(t.category, w.category) AS category,
    coalesce(t.rule_id, w.rule_id) AS rule_id,
    coalesce(t.severity, w.severity) AS severity,
    coalesce(t.subject_type, w.subject_type) AS subject_type,
    coalesce(t.subject_id, w.subject_id) AS subject_id,
    coalesce(t.id_number, w.id_number) AS id_number,
    coalesce(t.name, w.name) AS name,
    coalesce(t.program_code, w.program_code) AS program_code,
    coalesce(t.county_code, w.county_code) AS county_code,
    coalesce(t.township, w.township) AS township,
    coalesce(t.village, w.village) AS village,
    coalesce(t.first_period, w.first_period) AS first_period,
    coalesce(t.last_period, w.last_period) AS last_period,
    coalesce(t.amount_at_risk, w.amount_at_risk) AS amount_at_risk,
    coalesce(t.score, w.score) AS score,
    coalesce(t.evidence, w.evidence) AS evidence,
    -- least/greatest: a replayed earlier night (sentinel run --replay) never dates history backwards
    least(coalesce(w.first_seen, $as_of::DATE), $as_of::DATE) AS first_seen,
    CASE WHEN t.warning_id IS NOT NULL THEN greatest(coalesce(w.last_seen, $as_of::DATE), $as_of::DATE)
         ELSE w.last_seen END AS last_seen,
    CASE
        WHEN t.warning_id IS NULL THEN CASE WHEN w.status IN ('new', 'open') THEN 'resolved' ELSE w.status END
        WHEN w.warning_id IS NULL THEN 'new'
        WHEN w.status IN ('cleared', 'rectified') THEN
            CASE WHEN t.last_period > w.concluded_last_period OR t.amount_at_risk > w.concluded_amount
                      OR t.evidence_size > w.concluded_evidence_size THEN 'open' ELSE w.status END
        WHEN w.status = 'confirmed' THEN 'confirmed'
        WHEN w.first_seen = $as_of::DATE THEN 'new'  -- a re-run of the same batch date
        ELSE 'open'
    END AS status,
    coalesce(t.evidence_size, w.evidence_size) AS evidence_size,
    w.conclusion, w.conclusion_note, w.concluded_at,
    w.concluded_last_period, w.concluded_amount, w.concluded_evidence_size,
    $batch_id::BIGINT AS batch_id,
    coalesce(t.rule_params, w.rule_params) AS rule_params,
    CASE WHEN t.warning_id IS NOT NULL THEN $batch_id::BIGINT ELSE w.raised_batch_id END AS raised_batch_id,
    coalesce(w.first_batch_id, CASE WHEN w.warning_id IS NULL THEN $batch_id::BIGINT END) AS first_batch_id
FROM warnings_tonight t
FULL OUTER JOIN warnings w ON w.warning_id = t.warning_id
