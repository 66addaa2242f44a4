-- name_reading: every name of the registration and the payments with its folded spelling, its
-- pinyin reading and its sound code (rules/names.py), for the pair kind's name comparison levels.
-- Rebuilt whole when those names change (its table comment: what it was built from).
CREATE TABLE IF NOT EXISTS name_reading (
    name VARCHAR,
    folded VARCHAR,
    reading VARCHAR,
    sound VARCHAR
)
