-- The blocks of the changed persons' payments for a pair rule recomputed for them (rules/incremental.py
-- Night.pairs): the values of the rule's block_on columns, which the view pair_block_keys selects (made
-- there for the rule: its columns are the rule's). A TEMP table rather than a subquery: DuckDB then
-- knows the blocks are few and builds its hash table on them, not on the payments with all their
-- columns (1M persons, one day of payments: 0.19-0.21 s, now 0.10 s).
CREATE OR REPLACE TEMP TABLE pair_blocks AS SELECT * FROM pair_block_keys
