-- The registration rows naming a changed person (dirty_person), or no one, as a TEMP table of the same
-- name: it shadows the staging table on the rules' connection while the changed persons' rows of
-- mat_v_person are computed from v_person (rules/materialised.py), then it is dropped. The view,
-- evaluated whole and filtered after, would compute every person's row.
CREATE OR REPLACE TEMP TABLE stg_household_registration AS
SELECT * FROM stg_household_registration WHERE id_number IN (SELECT subject_id FROM dirty_person) OR id_number IS NULL
