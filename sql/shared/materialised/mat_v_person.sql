-- v_person as a table of the warehouse, made whole (rules/materialised.py keeps it up to date).
CREATE OR REPLACE TABLE mat_v_person AS SELECT * FROM v_person
