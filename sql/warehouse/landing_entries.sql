-- landing_entries: every entry of the landing directory and of an extract's directory, per batch;
-- kind file|directory|symlink, status loaded|skipped|ignored, with the reason.
CREATE TABLE IF NOT EXISTS landing_entries (
    batch_id BIGINT,
    entry VARCHAR,
    kind VARCHAR,
    status VARCHAR,
    reason VARCHAR
)
