-- changed_subjects: what the last batch's ingest changed in the staging tables, by subject, so that
-- the rules recompute only what new rows can touch (rules/incremental.py). A staged row added,
-- replaced or removed counts with both its old and its new version: every identity number in it
-- (subject_type 'person'), its household_id ('household'), bank_account ('account') and worker_id
-- ('worker'); and one row 'extract' (subject_id NULL) whenever anything in the extract changed, a
-- row naming no subject included. subject_type 'all' (subject_id NULL): the whole extract counts as
-- changed (its first load). Only the last batch's rows are kept: the rules compare with the batch
-- before it.
CREATE TABLE IF NOT EXISTS changed_subjects (
    batch_id BIGINT,
    extract VARCHAR,
    subject_type VARCHAR,
    subject_id VARCHAR
)
