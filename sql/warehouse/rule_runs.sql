-- rule_runs: one row per rule per batch: ran or skipped (with the reason), its hits and seconds.
CREATE TABLE IF NOT EXISTS rule_runs (
    batch_id BIGINT,
    rule_id VARCHAR,
    rule_version INTEGER,
    category VARCHAR,
    status VARCHAR,
    reason VARCHAR,
    hits BIGINT,
    seconds DOUBLE
)
