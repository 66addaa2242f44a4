-- model_reselect: tonight's model_outlier choice from last night's scores (models/scorer.py, a night
-- whose scores are carried over but whose rules raise other persons): the $k highest scored persons
-- no rule raises tonight (tonight_raised, registered by the scorer), highest first, ties by ID
-- number as the full computation breaks them; rank: the place among every scored person. The
-- reasons come from model_reasons; a chosen person without them has NULL f1 (the scorer then
-- computes everything again).
WITH ranked AS (
    SELECT id_number, score, row_number() OVER (ORDER BY score DESC, id_number) AS rank
    FROM model_scores
),
chosen AS (
    SELECT r.* FROM ranked r ANTI JOIN tonight_raised t USING (id_number)
    ORDER BY r.score DESC, r.id_number
    LIMIT $k
)
SELECT c.id_number, c.score, c.rank,
       m.f1, m.v1, m.p1, m.h1, m.s1_pct, m.f2, m.v2, m.p2, m.h2, m.s2_pct, m.f3, m.v3, m.p3, m.h3, m.s3_pct
FROM chosen c
LEFT JOIN model_reasons m USING (id_number)
ORDER BY c.score DESC, c.id_number
