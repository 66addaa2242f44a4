-- The training claims of the changed persons (dirty_person), as a TEMP table of the same name, while
-- person_v_training_claim is computed (see stg_service_orders.sql).
CREATE OR REPLACE TEMP TABLE stg_training_claims AS
SELECT * FROM stg_training_claims WHERE id_number IN (SELECT subject_id FROM dirty_person)
