-- model_features: the isolation-forest scorer's features, one row per paid person.
-- Grain: id_number (normalised, not null) of every payee in stg_payments whose period lies in
-- the scoring window [$period_from, $period_to] (text YYYY-MM, inclusive).
-- Columns and why each is fair to use: models/FEATURES.md. No protected attribute (sex, ethnicity,
-- name, birthplace = the ID's region code, age) is read here: only payments and the registered county.
WITH pay AS (
    SELECT
        id_number,
        program_code,
        bank_account,
        CAST(amount AS DOUBLE) AS amount,
        period,
        pay_date,
        county_code,
        CAST(strptime(period || '-01', '%Y-%m-%d') AS DATE) AS period_start
    FROM stg_payments
    WHERE id_number IS NOT NULL
      AND period BETWEEN $period_from AND $period_to
),
norm AS (  -- the program's norm: median amount of that program and period
    SELECT program_code, period, median(amount) AS norm_amount
    FROM pay
    GROUP BY program_code, period
),
account AS (  -- how many distinct persons an account receives money for (in the window)
    SELECT bank_account, count(DISTINCT id_number) AS account_persons
    FROM pay
    WHERE bank_account IS NOT NULL
    GROUP BY bank_account
),
reg AS (  -- registered county (stg_household_registration has one row per id_number)
    SELECT id_number, county_code AS reg_county
    FROM stg_household_registration
),
by_date AS (  -- bursts: how many distinct periods were paid on one pay date
    SELECT id_number, max(n_periods) AS max_periods_per_pay_date
    FROM (
        SELECT id_number, pay_date, count(DISTINCT period) AS n_periods
        FROM pay
        GROUP BY id_number, pay_date
    )
    GROUP BY id_number
),
p AS (
    SELECT
        pay.*,
        pay.amount / nullif(norm.norm_amount, 0) AS amount_ratio,
        account.account_persons,
        reg.reg_county
    FROM pay
    JOIN norm USING (program_code, period)
    LEFT JOIN account USING (bank_account)
    LEFT JOIN reg USING (id_number)
)
SELECT
    p.id_number,
    CAST(count(DISTINCT p.program_code) AS DOUBLE) AS n_programs,
    CAST(count(DISTINCT p.period) AS DOUBLE) AS n_periods,
    count(*) / count(DISTINCT (p.program_code, p.period)) AS payments_per_program_period,
    sum(p.amount) AS total_amount,
    coalesce(max(p.amount_ratio), 1.0) AS amount_ratio_max,
    CAST(count(DISTINCT p.bank_account) AS DOUBLE) AS n_accounts,
    count(DISTINCT p.bank_account) / count(DISTINCT p.period) AS accounts_per_period,
    CAST(coalesce(max(p.account_persons), 1) AS DOUBLE) AS account_max_persons,
    CAST(count(DISTINCT p.county_code) AS DOUBLE) AS n_paying_counties,
    avg(CASE WHEN p.reg_county IS NOT NULL AND p.county_code IS DISTINCT FROM p.reg_county
             THEN 1.0 ELSE 0.0 END) AS other_county_share,
    count(DISTINCT p.pay_date) / count(DISTINCT p.period) AS pay_dates_per_period,
    CAST(any_value(by_date.max_periods_per_pay_date) AS DOUBLE) AS max_periods_per_pay_date,
    CAST(max(p.pay_date - p.period_start) AS DOUBLE) AS max_pay_lag_days,
    CAST(date_diff('month', min(p.period_start), max(p.period_start)) + 1 - count(DISTINCT p.period) AS DOUBLE)
        AS period_gaps
FROM p
JOIN by_date USING (id_number)
GROUP BY p.id_number
ORDER BY p.id_number
