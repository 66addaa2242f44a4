-- carry_scores: whether last night's model_scores can stand for tonight's (models/scorer.py): one row
-- (the batch they are of, their fingerprint and how many fingerprints, and how many scored persons
-- a rule raises tonight but did not then, or the other way round). tonight_raised: the persons the
-- rules raise tonight (model_rule_raised), registered by the scorer.
SELECT
    max(s.batch_id) AS batch_id,
    min(s.fingerprint) AS fingerprint,
    count(DISTINCT s.fingerprint) AS fingerprints,
    count(*) FILTER (WHERE s.raised IS DISTINCT FROM (r.id_number IS NOT NULL)) AS raised_differ
FROM model_scores s
LEFT JOIN tonight_raised r USING (id_number)
