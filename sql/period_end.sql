-- Last day of a 'YYYY-MM' period.
CREATE OR REPLACE MACRO period_end(period) AS (
    last_day(CAST(strptime(period || '-01', '%Y-%m-%d') AS DATE))
)
