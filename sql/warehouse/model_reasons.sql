-- model_reasons: the three rarest features (models/explain.py) of the persons the scorer scored
-- highest in a batch, kept so that a night whose scores are carried over but whose rules raise
-- other persons can choose tonight's model_outlier hits again without computing the features
-- (models/scorer.py). Grain: (batch_id, id_number), for the top k + (persons raised) + k persons by
-- score. f<r>: the feature's name, v<r> its value, p<r> its mid-rank percentile, h<r> whether high,
-- s<r>_pct the share of the scored population beyond it, in percent.
CREATE TABLE IF NOT EXISTS model_reasons (
    batch_id BIGINT NOT NULL,
    id_number VARCHAR NOT NULL,
    f1 VARCHAR, v1 DOUBLE, p1 DOUBLE, h1 BOOLEAN, s1_pct DOUBLE,
    f2 VARCHAR, v2 DOUBLE, p2 DOUBLE, h2 BOOLEAN, s2_pct DOUBLE,
    f3 VARCHAR, v3 DOUBLE, p3 DOUBLE, h3 BOOLEAN, s3_pct DOUBLE
)
