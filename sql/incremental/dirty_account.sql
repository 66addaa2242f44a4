-- The accounts tonight's staged rows name (changed_subjects: a payment's bank_account, old and new
-- versions) and those the persons they name were paid into (their registration shows in the
-- account's evidence). An `incremental: account` rule is recomputed for them only.
CREATE OR REPLACE TEMP TABLE dirty_account AS
SELECT subject_id FROM changed_subjects WHERE batch_id = $batch_id AND subject_type = 'account'
UNION
SELECT bank_account FROM v_payment WHERE bank_account IS NOT NULL AND id_number IN (SELECT subject_id FROM dirty_person)
