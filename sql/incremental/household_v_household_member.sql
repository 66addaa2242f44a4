-- v_household_member restricted to the changed households (dirty_household), by household_id: what an
-- `incremental: household` rule reads instead of v_household_member when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE household_v_household_member AS SELECT * FROM v_household_member WHERE household_id IN (SELECT subject_id FROM dirty_household)
