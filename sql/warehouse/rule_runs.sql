-- rule_runs: one row per rule per batch: ran or skipped (with the reason), its hits and seconds;
-- for a rule that ran, how (rules/incremental.py): computed 'full', 'carried' (nothing it reads
-- changed: the last batch's hits), 'persons', 'households', 'accounts' (an incremental rule
-- recomputed for the `subjects` of its grain tonight's rows name), or 'pairs' (a pair rule's pairs
-- with one of the `subjects` persons tonight's rows name recomputed), and the fingerprint of its SQL
-- and bindings that the next batch compares with.
CREATE TABLE IF NOT EXISTS rule_runs (
    batch_id BIGINT,
    rule_id VARCHAR,
    rule_version INTEGER,
    category VARCHAR,
    status VARCHAR,
    reason VARCHAR,
    hits BIGINT,
    seconds DOUBLE,
    computed VARCHAR,
    subjects BIGINT,
    fingerprint VARCHAR
)
