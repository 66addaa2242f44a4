-- v_servant_post restricted to the changed households (dirty_household), by household_id: what an
-- `incremental: household` rule reads instead of v_servant_post when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE household_v_servant_post AS SELECT * FROM v_servant_post WHERE household_id IN (SELECT subject_id FROM dirty_household)
