-- v_payment restricted to the changed households (dirty_household), by household_id: what an
-- `incremental: household` rule reads instead of v_payment when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE household_v_payment AS SELECT * FROM v_payment WHERE household_id IN (SELECT subject_id FROM dirty_household)
