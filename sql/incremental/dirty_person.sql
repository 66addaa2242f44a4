-- The persons tonight's staged rows name (changed_subjects, old and new versions of each row): an
-- `incremental: person` rule is recomputed for them only.
CREATE OR REPLACE TEMP TABLE dirty_person AS
SELECT DISTINCT subject_id FROM changed_subjects WHERE batch_id = $batch_id AND subject_type = 'person'
