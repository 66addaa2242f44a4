-- v_service_order restricted to the changed persons (dirty_person), by its person column elder_id_number: what an
-- `incremental: person` rule reads instead of v_service_order when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE person_v_service_order AS SELECT * FROM v_service_order WHERE elder_id_number IN (SELECT subject_id FROM dirty_person)
