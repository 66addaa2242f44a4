-- The changed persons' rows of v_person, computed once over the staging tables restricted to them
-- (stg_household_registration.sql, stg_death_records.sql), as a TEMP table named v_person: inserted
-- into mat_v_person, and read by v_payment for the same persons' payments (rules/materialised.py).
CREATE OR REPLACE TEMP TABLE v_person AS SELECT * FROM v_person
