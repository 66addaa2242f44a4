-- Full years completed on a date (POLICY.md: age in a period = age on the last day of its month).
CREATE OR REPLACE MACRO age_years(birth, on_date) AS (
    year(on_date) - year(birth)
    - CASE WHEN month(on_date) < month(birth)
             OR (month(on_date) = month(birth) AND day(on_date) < day(birth)) THEN 1 ELSE 0 END
)
