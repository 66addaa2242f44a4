-- v_payment as a table of the warehouse, made whole after mat_v_person, which shadows v_person on the
-- connection by then (rules/materialised.py).
CREATE OR REPLACE TABLE mat_v_payment AS SELECT * FROM v_payment
