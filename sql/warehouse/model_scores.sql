-- model_scores: every person the isolation-forest scorer scored in a batch (replaced each batch).
-- Grain: (batch_id, id_number). score in [0, 1], higher is more unusual (models/FEATURES.md).
CREATE TABLE IF NOT EXISTS model_scores (
    batch_id BIGINT NOT NULL,
    id_number VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    explanation VARCHAR
)
