-- Grain: one row per payment (stg_payments), with its period's first and last day, the payee's
-- registration (name, sex, birth date, household, status, date of death, move-out) and the
-- payee's age in the period (full years on the last day of the period's month). Sex and birth
-- date fall back to those written in a valid ID number when the payee is not registered.
-- reg_township and reg_village, where a warning sends the verifier of the paying county_code (the
-- rules take them before the payment's own), are the registration's only where the payee is
-- registered in the paying county: a township of another county under this county's code is a list
-- no office owns. Where the payee lives in any county: reg_county_code, and v_person.
CREATE OR REPLACE VIEW v_payment AS
SELECT
    p.payment_id, p.program_code, p.id_number, coalesce(p.id_number_valid, false) AS id_number_valid,
    p.name, p.household_id AS paid_household_id, p.bank_account, p.amount, p.period,
    CAST(strptime(p.period || '-01', '%Y-%m-%d') AS DATE) AS period_start,
    period_end(p.period) AS period_end,
    p.pay_date, p.county_code, p.township, p.village, p.approved_by,
    coalesce(r.registered, false) AS registered,
    r.name AS reg_name,
    coalesce(r.sex, CASE WHEN p.id_number_valid THEN id_sex(p.id_number) END) AS sex,
    coalesce(r.birth_date, CASE WHEN p.id_number_valid THEN id_birth_date(p.id_number) END) AS birth_date,
    coalesce(r.household_id, p.household_id) AS household_id,
    r.relation_to_head, r.county_code AS reg_county_code,
    CASE WHEN r.county_code = p.county_code THEN r.township END AS reg_township,
    CASE WHEN r.county_code = p.county_code THEN r.village END AS reg_village,
    r.status AS reg_status, r.status_date, r.death_date, r.death_source, r.moved_out_date,
    age_years(coalesce(r.birth_date, CASE WHEN p.id_number_valid THEN id_birth_date(p.id_number) END),
              period_end(p.period)) AS age_in_period
FROM stg_payments p
LEFT JOIN v_person r ON r.id_number = p.id_number
