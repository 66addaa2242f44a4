-- The rules stage's copy of the view v_person, computed once per batch (rules/execute.py: materialise), not
-- once per rule: a TEMP table of the view's name shadows the view for the rules' connection only.
CREATE OR REPLACE TEMP TABLE v_person AS SELECT * FROM main.v_person
