-- run_extracts: one row per extract per batch; rows_read = rows_loaded + rows_quarantined.
CREATE TABLE IF NOT EXISTS run_extracts (
    batch_id BIGINT,
    extract VARCHAR,
    delivered BOOLEAN,
    files BIGINT,
    files_skipped BIGINT,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT
)
