-- v_payment restricted to the changed accounts (dirty_account), by bank_account: what an
-- `incremental: account` rule reads instead of v_payment when it is recomputed for them.
CREATE OR REPLACE TEMP TABLE account_v_payment AS SELECT * FROM v_payment WHERE bank_account IN (SELECT subject_id FROM dirty_account)
