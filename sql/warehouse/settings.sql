-- settings: the warehouse's own values, e.g. warning_id_salt (made once per warehouse).
CREATE TABLE IF NOT EXISTS settings (
    key VARCHAR PRIMARY KEY,
    value VARCHAR
)
