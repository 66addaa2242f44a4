-- v_payment restricted to the changed persons (dirty_person), by its person column id_number: what an
-- `incremental: person` rule reads instead of v_payment when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE person_v_payment AS SELECT * FROM v_payment WHERE id_number IN (SELECT subject_id FROM dirty_person)
