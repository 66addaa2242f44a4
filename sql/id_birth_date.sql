-- Birth date written in an 18-digit identity number (NULL when it is not a real date).
CREATE OR REPLACE MACRO id_birth_date(id) AS (
    CASE WHEN length(id) = 18 THEN CAST(try_strptime(substr(id, 7, 8), '%Y%m%d') AS DATE) END
)
