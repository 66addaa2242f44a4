-- Last night's rule hits, kept while tonight's rule_hits is rebuilt (rules/incremental.py): a rule
-- whose inputs did not change carries its hits over from here.
CREATE OR REPLACE TEMP TABLE prev_hits AS SELECT * FROM rule_hits WHERE batch_id = $last
