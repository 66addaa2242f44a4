-- model_hit_subjects: what a model_outlier hit reports about each selected person.
-- Grain: id_number, one row per person of the registered relation model_top(id_number).
-- Window: payments with period in [$period_from, $period_to] (the scorer's window).
-- Name and location (where the verifier goes): the household registration when the person is
-- registered, else the latest payment in the window. program_code: the program when the person
-- is paid by one only, else NULL (the finding spans programs). amount_at_risk: the money paid in
-- the window (a lead reports the amount involved, POLICY.md).
WITH pay AS (
    SELECT p.*
    FROM stg_payments AS p
    JOIN model_top AS t USING (id_number)
    WHERE p.period BETWEEN $period_from AND $period_to
),
latest AS (
    SELECT id_number, name, county_code, township, village
    FROM pay
    QUALIFY row_number() OVER (PARTITION BY id_number ORDER BY pay_date DESC, period DESC, payment_id DESC) = 1
),
agg AS (
    SELECT
        id_number,
        min(period) AS first_period,
        max(period) AS last_period,
        CAST(sum(amount) AS DECIMAL(18, 2)) AS amount_at_risk,
        CAST(count(*) AS INTEGER) AS evidence_size,
        count(DISTINCT program_code) AS n_programs,
        min(program_code) AS program_min,
        string_agg(DISTINCT program_code, '、' ORDER BY program_code) AS programs
    FROM pay
    GROUP BY id_number
)
SELECT
    agg.id_number,
    coalesce(reg.name, latest.name) AS name,
    CASE WHEN agg.n_programs = 1 THEN agg.program_min END AS program_code,
    CASE WHEN reg.id_number IS NOT NULL THEN reg.county_code ELSE latest.county_code END AS county_code,
    CASE WHEN reg.id_number IS NOT NULL THEN reg.township ELSE latest.township END AS township,
    CASE WHEN reg.id_number IS NOT NULL THEN reg.village ELSE latest.village END AS village,
    agg.first_period,
    agg.last_period,
    agg.amount_at_risk,
    agg.evidence_size,
    agg.programs
FROM agg
JOIN latest USING (id_number)
LEFT JOIN stg_household_registration AS reg ON reg.id_number = agg.id_number
ORDER BY agg.id_number
