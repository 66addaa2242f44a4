-- model_scores: every person the isolation-forest scorer scored in a batch (replaced each batch).
-- Grain: (batch_id, id_number). score in [0, 1], higher is more unusual (models/FEATURES.md).
-- raised: a rule raised the person that night (the scorer then does not report them); fingerprint:
-- the model, the features' code and window and the scorer's settings, the same on every row (a
-- night where nothing it reads changed carries the scores over: models/scorer.py).
CREATE TABLE IF NOT EXISTS model_scores (
    batch_id BIGINT NOT NULL,
    id_number VARCHAR NOT NULL,
    score DOUBLE NOT NULL,
    explanation VARCHAR,
    raised BOOLEAN,
    fingerprint VARCHAR
)
