-- materialised: the batch each table kept in place of a shared view (mat_v_person, mat_v_payment)
-- is current for, and the digest of the shared SQL and libraries it was computed with
-- (rules/materialised.py). A table not current for the batch before is built whole.
CREATE TABLE IF NOT EXISTS materialised (
    view VARCHAR,
    batch_id BIGINT,
    digest VARCHAR
)
