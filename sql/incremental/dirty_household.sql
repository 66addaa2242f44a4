-- The households tonight's staged rows name (changed_subjects: a payment's or a registration row's
-- household_id, old and new versions) and those of the persons they name: the household each is
-- registered in now, and the households their payments count for (a person who moved out of a
-- household is in the old one's registration row, recorded too). An `incremental: household` rule
-- is recomputed for them only.
CREATE OR REPLACE TEMP TABLE dirty_household AS
SELECT subject_id FROM changed_subjects WHERE batch_id = $batch_id AND subject_type = 'household'
UNION
SELECT household_id FROM v_person WHERE household_id IS NOT NULL AND id_number IN (SELECT subject_id FROM dirty_person)
UNION
SELECT household_id FROM v_payment WHERE household_id IS NOT NULL AND id_number IN (SELECT subject_id FROM dirty_person)
UNION
SELECT paid_household_id FROM v_payment
WHERE paid_household_id IS NOT NULL AND id_number IN (SELECT subject_id FROM dirty_person)
