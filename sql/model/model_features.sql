-- model_features: the isolation-forest scorer's features, one row per paid person.
-- Grain: id_number (normalised, not null) of every payee in stg_payments whose period lies in
-- the scoring window [$period_from, $period_to] (text YYYY-MM, inclusive).
-- Columns and why each is fair to use: models/FEATURES.md. No protected attribute (sex, ethnicity,
-- name, birthplace = the ID's region code, age) is read here: only payments and the registered county.
-- Shape: small GROUP BYs at the grain of each distinct count (person x period, x account, x pay
-- date), then one join per person; no count(DISTINCT) over the payments (it held every payment
-- in hash sets and doubled peak memory).
WITH pay AS (
    SELECT
        id_number,
        program_code,
        bank_account,
        CAST(amount AS DOUBLE) AS amount,
        period,
        pay_date,
        county_code
    FROM stg_payments
    WHERE id_number IS NOT NULL
      AND period BETWEEN $period_from AND $period_to
),
norm AS (  -- the program's norm: median amount of that program and period
    SELECT program_code, period, median(amount) AS norm_amount
    FROM pay
    GROUP BY program_code, period
),
reg AS (  -- registered county (stg_household_registration has one row per id_number)
    SELECT id_number, county_code AS reg_county
    FROM stg_household_registration
),
per_program_period AS (  -- person x program x month
    SELECT
        pay.id_number,
        pay.program_code,
        pay.period,
        count(*) AS n_payments,
        sum(pay.amount) AS amount,
        max(pay.amount / nullif(norm.norm_amount, 0)) AS amount_ratio_max,
        sum(CASE WHEN reg.reg_county IS NOT NULL AND pay.county_code IS DISTINCT FROM reg.reg_county
                 THEN 1 ELSE 0 END) AS n_other_county,
        max(date_diff('day', CAST(strptime(pay.period || '-01', '%Y-%m-%d') AS DATE), pay.pay_date))
            AS max_pay_lag_days
    FROM pay
    JOIN norm USING (program_code, period)
    LEFT JOIN reg USING (id_number)
    GROUP BY pay.id_number, pay.program_code, pay.period
),
per_person AS (
    SELECT
        id_number,
        count(DISTINCT program_code) AS n_programs,
        count(DISTINCT period) AS n_periods,
        sum(n_payments) / count(*) AS payments_per_program_period,
        sum(n_payments) AS n_payments,
        sum(amount) AS total_amount,
        coalesce(max(amount_ratio_max), 1.0) AS amount_ratio_max,
        sum(n_other_county) / sum(n_payments) AS other_county_share,
        max(max_pay_lag_days) AS max_pay_lag_days,
        date_diff('month', CAST(strptime(min(period) || '-01', '%Y-%m-%d') AS DATE),
                  CAST(strptime(max(period) || '-01', '%Y-%m-%d') AS DATE)) + 1 - count(DISTINCT period) AS period_gaps
    FROM per_program_period
    GROUP BY id_number
),
person_account AS (  -- person x account
    SELECT DISTINCT id_number, bank_account FROM pay WHERE bank_account IS NOT NULL
),
account AS (  -- how many distinct persons an account receives money for (in the window)
    SELECT bank_account, count(*) AS account_persons FROM person_account GROUP BY bank_account
),
accounts AS (
    SELECT id_number, count(*) AS n_accounts, max(account_persons) AS account_max_persons
    FROM person_account JOIN account USING (bank_account)
    GROUP BY id_number
),
counties AS (
    SELECT id_number, count(DISTINCT county_code) AS n_paying_counties FROM pay GROUP BY id_number
),
pay_dates AS (  -- bursts: distinct pay dates, and the most periods paid on one of them
    SELECT id_number, count(*) AS n_pay_dates, max(n_periods) AS max_periods_per_pay_date
    FROM (SELECT id_number, pay_date, count(DISTINCT period) AS n_periods FROM pay GROUP BY id_number, pay_date)
    GROUP BY id_number
)
SELECT
    p.id_number,
    CAST(p.n_programs AS DOUBLE) AS n_programs,
    CAST(p.n_periods AS DOUBLE) AS n_periods,
    CAST(p.payments_per_program_period AS DOUBLE) AS payments_per_program_period,
    p.total_amount,
    p.amount_ratio_max,
    CAST(coalesce(a.n_accounts, 0) AS DOUBLE) AS n_accounts,
    coalesce(a.n_accounts, 0) / p.n_periods AS accounts_per_period,
    CAST(coalesce(a.account_max_persons, 1) AS DOUBLE) AS account_max_persons,
    CAST(c.n_paying_counties AS DOUBLE) AS n_paying_counties,
    CAST(p.other_county_share AS DOUBLE) AS other_county_share,
    d.n_pay_dates / p.n_periods AS pay_dates_per_period,
    CAST(d.max_periods_per_pay_date AS DOUBLE) AS max_periods_per_pay_date,
    CAST(p.max_pay_lag_days AS DOUBLE) AS max_pay_lag_days,
    CAST(p.period_gaps AS DOUBLE) AS period_gaps
FROM per_person AS p
LEFT JOIN accounts AS a USING (id_number)
JOIN counties AS c USING (id_number)
JOIN pay_dates AS d USING (id_number)
ORDER BY p.id_number
