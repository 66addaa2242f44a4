-- rule_hits: tonight's findings of the rule catalog, one row per (rule, subject[, finding_key]).
-- Replaced each batch. The hit columns (subject_type .. evidence_size) are the contract every rule
-- kind's compiler writes (rules/compile.py reads them from here) and the scorer's model_hits shares.
CREATE TABLE IF NOT EXISTS rule_hits (
    batch_id BIGINT NOT NULL,
    rule_id VARCHAR NOT NULL,
    rule_version INTEGER NOT NULL,
    category VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    subject_type VARCHAR NOT NULL,
    subject_id VARCHAR NOT NULL,
    id_number VARCHAR,
    name VARCHAR,
    program_code VARCHAR,
    county_code VARCHAR,
    township VARCHAR,
    village VARCHAR,
    first_period VARCHAR,
    last_period VARCHAR,
    amount_at_risk DECIMAL(18, 2),
    evidence VARCHAR,
    evidence_size INTEGER,
    finding_key VARCHAR
)
