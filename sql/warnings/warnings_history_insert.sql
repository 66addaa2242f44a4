-- grain: one row per warning per batch in which it was raised or changed status.
INSERT INTO warning_history BY NAME
SELECT n.batch_id, $as_of::DATE AS as_of, n.warning_id, n.status, n.amount_at_risk, n.last_period, n.evidence_size,
       'batch' AS source, NULL AS file
FROM warnings_next n
LEFT JOIN warnings w ON w.warning_id = n.warning_id
WHERE n.last_seen = $as_of::DATE OR w.status IS DISTINCT FROM n.status
