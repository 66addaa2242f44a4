-- The death records naming a changed person (dirty_person), as a TEMP table of the same name, for the
-- changed persons' rows of v_person (see stg_household_registration.sql; v_person reads no death record
-- without an ID number).
CREATE OR REPLACE TEMP TABLE stg_death_records AS
SELECT * FROM stg_death_records WHERE id_number IN (SELECT subject_id FROM dirty_person)
