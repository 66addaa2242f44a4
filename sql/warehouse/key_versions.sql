-- key_versions: per incremental extract delivered in a batch, how many of its keys were already
-- in staging (keys_resent) and how many of those came with other content (keys_changed).
CREATE TABLE IF NOT EXISTS key_versions (
    batch_id BIGINT,
    extract VARCHAR,
    keys_resent BIGINT,
    keys_changed BIGINT
)
