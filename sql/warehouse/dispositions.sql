-- dispositions: every verifier conclusion read from a returned list, as returned.
CREATE TABLE IF NOT EXISTS dispositions (
    warning_id VARCHAR,
    conclusion VARCHAR,
    status VARCHAR,
    note VARCHAR,
    amount_reported DECIMAL(18, 2),
    returned_by VARCHAR,
    file VARCHAR,
    file_sha256 VARCHAR,
    line BIGINT,
    recorded_at TIMESTAMP
)
