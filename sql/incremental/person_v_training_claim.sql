-- v_training_claim restricted to the changed persons (dirty_person), by its person column id_number: what an
-- `incremental: person` rule reads instead of v_training_claim when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE person_v_training_claim AS SELECT * FROM v_training_claim WHERE id_number IN (SELECT subject_id FROM dirty_person)
