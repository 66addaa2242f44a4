-- The registration rows of the changed households (dirty_household), as a TEMP table of the same
-- name: it shadows the staging table while the household views keyed through v_household_member
-- are computed (rules/incremental.py Night.dirty, SHADOWS), then it is dropped. Those views,
-- evaluated whole and filtered after, would join every member with the vehicles, properties and
-- posts (0.04-0.07 s each at 1M persons, against a few milliseconds on these rows).
CREATE OR REPLACE TEMP TABLE stg_household_registration AS
SELECT * FROM stg_household_registration WHERE household_id IN (SELECT subject_id FROM dirty_household)
