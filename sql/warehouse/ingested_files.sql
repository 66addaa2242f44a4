-- ingested_files: every delivered file of every batch; status 'loaded' or 'skipped' (a re-delivery).
CREATE TABLE IF NOT EXISTS ingested_files (
    batch_id BIGINT,
    extract VARCHAR,
    file VARCHAR,
    format VARCHAR,
    encoding VARCHAR,
    bytes BIGINT,
    sha256 VARCHAR,
    status VARCHAR,
    rows_read BIGINT
)
