-- model_hits: the model_outlier findings of a batch, same columns as rule_hits (DEVELOPERS.md).
-- Grain: (batch_id, subject_id); subject_type is always person. Replaced each batch.
CREATE OR REPLACE TABLE model_hits (
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
    evidence_size INTEGER
)
