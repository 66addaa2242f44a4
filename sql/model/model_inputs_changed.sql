-- model_inputs_changed: how many of tonight's changes (changed_subjects, data_contracts/load.py) the
-- scorer's inputs see: its features (model_features) and its hits' facts (model_hit_subjects) read
-- stg_household_registration, and the rows of stg_payments whose period lies in the window
-- [$period_from, $period_to]. A changed payment is recorded with its period (old and new versions),
-- so that a night of payments for a month after the window leaves the scores as they were. An
-- extract loaded whole ('all') counts whatever it is.
SELECT count(*) AS changed
FROM changed_subjects
WHERE batch_id = $batch_id
  AND (extract = 'household_registration'
       OR (extract = 'payments' AND (subject_type = 'all'
                                     OR (subject_type = 'period' AND subject_id BETWEEN $period_from AND $period_to))))
