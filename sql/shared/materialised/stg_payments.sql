-- The payments to a changed person (dirty_person), or to no one, as a TEMP table of the same name, for
-- the changed persons' rows of mat_v_payment (see stg_household_registration.sql).
CREATE OR REPLACE TEMP TABLE stg_payments AS
SELECT * FROM stg_payments WHERE id_number IN (SELECT subject_id FROM dirty_person) OR id_number IS NULL
