-- The service orders of the changed persons' (dirty_person) as elders, as a TEMP table of the same name:
-- it shadows the staging table while person_v_service_order is computed, then it is dropped
-- (rules/incremental.py Night.dirty). The view, evaluated whole and filtered after, would compute
-- every order's row (DuckDB does not push the filter through its LEFT JOIN).
CREATE OR REPLACE TEMP TABLE stg_service_orders AS
SELECT * FROM stg_service_orders WHERE elder_id_number IN (SELECT subject_id FROM dirty_person)
