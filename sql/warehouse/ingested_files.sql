-- ingested_files: every delivered file of every batch; status 'loaded' or 'skipped' (a re-delivery).
-- stat: the file's size, times, inode and device when it was hashed (data_contracts/landing.py
-- file_stat), NULL if it had changed too recently to be recognised by them later.
CREATE TABLE IF NOT EXISTS ingested_files (
    batch_id BIGINT,
    extract VARCHAR,
    file VARCHAR,
    format VARCHAR,
    encoding VARCHAR,
    bytes BIGINT,
    sha256 VARCHAR,
    status VARCHAR,
    rows_read BIGINT,
    stat VARCHAR
)
