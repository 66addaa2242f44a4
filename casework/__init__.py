"""The cases handed to verifiers and what they send back: the warnings' lifecycle across nights
(lifecycle.py), the township lists (lists.py), the verifiers' conclusions (feedback.py) and the
batch's run summary (summary.py). Plain functions over a DuckDB connection; flows/ runs them."""
