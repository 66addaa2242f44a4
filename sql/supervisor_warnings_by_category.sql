-- grain: one row per (category, county_code, status): how many warnings and how much money.
CREATE OR REPLACE VIEW supervisor_warnings_by_category AS
SELECT category, county_code, status, count(*) AS warnings, sum(amount_at_risk) AS amount_at_risk
FROM warnings
GROUP BY ALL
ORDER BY category, county_code, status
