-- warnings: one row per (category, subject, program[, finding_key]) ever raised, with its status
-- across nights and the verifiers' conclusions (OUTPUTS.md). rule_id, rule_params, raised_batch_id and
-- first_batch_id record what raised it (oversight/recompute.py). A warehouse made before a column
-- was added gains it (null on old rows) when the table is ensured. The columns OUTPUTS.md names come
-- first, up to status: they are warnings.csv's (casework/lists.py); the rest is the warehouse's own.
CREATE TABLE IF NOT EXISTS warnings (
    warning_id VARCHAR PRIMARY KEY,
    category VARCHAR,
    rule_id VARCHAR,
    severity VARCHAR,
    subject_type VARCHAR,
    subject_id VARCHAR,
    id_number VARCHAR,
    name VARCHAR,
    program_code VARCHAR,
    county_code VARCHAR,
    township VARCHAR,
    village VARCHAR,
    first_period VARCHAR,
    last_period VARCHAR,
    amount_at_risk DECIMAL(18, 2),
    score DOUBLE,
    evidence VARCHAR,
    first_seen DATE,
    last_seen DATE,
    status VARCHAR,
    -- the warehouse's own, not in warnings.csv
    evidence_size INTEGER,
    conclusion VARCHAR,
    conclusion_note VARCHAR,
    concluded_at TIMESTAMP,
    concluded_last_period VARCHAR,
    concluded_amount DECIMAL(18, 2),
    concluded_evidence_size INTEGER,
    batch_id BIGINT,
    rule_params VARCHAR,
    raised_batch_id BIGINT,
    first_batch_id BIGINT
)
