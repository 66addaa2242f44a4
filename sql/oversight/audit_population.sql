-- grain: one row per (paid person, program) with a payment whose period lies in the audit window
-- $period_from..$period_to. Where the person lives (the registration when registered, else the
-- latest payment), and sex and age band: read here for the audit only (no rule and no model
-- feature reads them). Sex and birth date come from the registration, else from a valid ID number
-- (v_payment). Age band: full years on $as_of.
CREATE OR REPLACE TEMP TABLE audit_population AS
SELECT
    p.id_number, p.program_code,
    coalesce(any_value(r.county_code), arg_max(p.county_code, p.period)) AS county_code,
    -- the registration's county with its township, else the latest payment's (never one's with the other's)
    CASE WHEN any_value(r.county_code) IS NOT NULL THEN any_value(r.county_code) || '/' || coalesce(any_value(r.township), '?')
         ELSE arg_max(p.county_code, p.period) || '/' || coalesce(arg_max(p.township, p.period), '?') END AS township,
    coalesce(any_value(p.sex), 'unknown') AS sex,
    CASE
        WHEN any_value(p.birth_date) IS NULL THEN 'unknown'
        WHEN age_years(any_value(p.birth_date), $as_of::DATE) < 18 THEN '0-17'
        WHEN age_years(any_value(p.birth_date), $as_of::DATE) < 60 THEN '18-59'
        WHEN age_years(any_value(p.birth_date), $as_of::DATE) < 70 THEN '60-69'
        WHEN age_years(any_value(p.birth_date), $as_of::DATE) < 80 THEN '70-79'
        ELSE '80+'
    END AS age_band
FROM v_payment p
LEFT JOIN v_person r ON r.id_number = p.id_number
WHERE p.id_number IS NOT NULL AND p.period BETWEEN $period_from AND $period_to
GROUP BY p.id_number, p.program_code
