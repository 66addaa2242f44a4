-- warning_history: every change of a warning's status, per batch or feedback file.
CREATE TABLE IF NOT EXISTS warning_history (
    batch_id BIGINT,
    as_of DATE,
    warning_id VARCHAR,
    status VARCHAR,
    amount_at_risk DECIMAL(18, 2),
    last_period VARCHAR,
    evidence_size INTEGER,
    source VARCHAR,
    file VARCHAR
)
