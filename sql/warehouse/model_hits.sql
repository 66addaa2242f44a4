-- model_hits: the model_outlier findings of a batch: rule_hits' columns without finding_key
-- (one finding per person). Grain: (batch_id, subject_id); subject_type is always person. Replaced each batch.
CREATE TABLE IF NOT EXISTS model_hits AS
SELECT * EXCLUDE (finding_key) FROM rule_hits WITH NO DATA
