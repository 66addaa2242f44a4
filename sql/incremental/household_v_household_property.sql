-- v_household_property restricted to the changed households (dirty_household), by household_id: what an
-- `incremental: household` rule reads instead of v_household_property when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE household_v_household_property AS SELECT * FROM v_household_property WHERE household_id IN (SELECT subject_id FROM dirty_household)
