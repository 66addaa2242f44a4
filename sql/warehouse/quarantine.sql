-- quarantine: the rows that could not be loaded, with the reason and the row as delivered
-- (JSON of canonical column -> text, or the raw line for a row that does not split).
CREATE TABLE IF NOT EXISTS quarantine (
    batch_id BIGINT,
    extract VARCHAR,
    file VARCHAR,
    line BIGINT,
    reason VARCHAR,
    record VARCHAR
)
