-- runs: one row per batch (OUTPUTS.md). One writer, flows/runs.py, called by the flow: started (outcome
-- 'started'), the ingest's counts ('ingested'), the warnings stage's counts, 'succeeded' after the last stage.
CREATE TABLE IF NOT EXISTS runs (
    batch_id BIGINT PRIMARY KEY,
    as_of DATE NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    outcome VARCHAR,
    input_dir VARCHAR,
    files BIGINT,
    files_skipped BIGINT,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    warnings_new BIGINT,
    warnings_open BIGINT,
    warnings_resolved BIGINT
)
