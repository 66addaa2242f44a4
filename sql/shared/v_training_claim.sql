-- Grain: one row per training claim, with the claimant's registration and age at the claim date.
CREATE OR REPLACE VIEW v_training_claim AS
SELECT
    c.claim_id, c.id_number, c.name, c.certificate_number, c.occupation, c.level, c.training_org,
    c.county_code, c.claim_date, c.amount, strftime(c.claim_date, '%Y-%m') AS period,
    r.name AS reg_name,
    -- the registration's township and village where it is in the claim's county (as in v_payment)
    CASE WHEN r.county_code = c.county_code THEN r.township END AS reg_township,
    CASE WHEN r.county_code = c.county_code THEN r.village END AS reg_village,
    coalesce(r.birth_date, CASE WHEN c.id_number_valid THEN id_birth_date(c.id_number) END) AS birth_date,
    age_years(coalesce(r.birth_date, CASE WHEN c.id_number_valid THEN id_birth_date(c.id_number) END),
              c.claim_date) AS age_at_claim
FROM stg_training_claims c
LEFT JOIN v_person r ON r.id_number = c.id_number
