-- The posts of the changed persons (dirty_person), as a TEMP table of the same name, while
-- person_v_servant_post is computed (see stg_service_orders.sql).
CREATE OR REPLACE TEMP TABLE stg_public_servants AS
SELECT * FROM stg_public_servants WHERE id_number IN (SELECT subject_id FROM dirty_person)
