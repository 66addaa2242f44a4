"""data_contracts/quarantine.py: repeated keys found by sorting hashes give what comparing the keys
themselves gives (the rows kept, quarantined and counted as changed), also where two different keys
share a hash."""
from __future__ import annotations

import numpy as np
import polars as pl

from data_contracts import quarantine
from data_contracts.extracts import EXTRACTS
from data_contracts.quarantine import _repeated, sort_rows


def test_a_hash_shared_by_different_keys_repeats_no_key():
    keys = pl.Series(["a", "b", "c", "b", "d"])
    same = pl.Series([7, 7, 7, 7, 7], dtype=pl.UInt64)  # every key collides
    assert _repeated(same, keys).to_list() == [1, 3]
    assert _repeated(keys.hash(), keys).to_list() == [1, 3]
    assert _repeated(same.head(3), keys.head(3)).to_list() == []


def _reference(extract, good: pl.DataFrame) -> tuple[pl.DataFrame, list[int], set]:
    """What the rows to load, the conflicting rows and the changed keys are by definition: keys
    compared as they are, the last row of a key kept."""
    key = pl.col(extract.key[0]) if len(extract.key) == 1 else pl.struct(extract.key)
    content = [c for c in good.columns if c not in ("_file", "_line")]
    d = good.with_row_index("i").select("i", k=key, f="_file", h=pl.struct(content).hash())
    conflict = d.filter(pl.col("h").n_unique().over("k", "f") > 1)["i"].to_list()
    rest = good.with_row_index("i").filter(~pl.col("i").is_in(conflict))
    kept = d.filter(~pl.col("i").is_in(conflict))
    changed = set(kept.filter(pl.col("h").n_unique().over("k") > 1)["k"].to_list()) if len(extract.key) == 1 else set()
    return rest.filter(key.is_last_distinct()).drop("i"), conflict, changed


def test_sorted_rows_equal_the_keys_compared_as_they_are(monkeypatch):
    rng = np.random.default_rng(5)
    for name in ("payments", "property_registration"):  # one key column; two
        e = EXTRACTS[name]
        n = 3000
        cols = {c: pl.Series(c, rng.integers(0, 400 if c in e.key else 3, n).astype(str)) for c in e.column_names}
        raw = pl.DataFrame(cols).with_columns(_file=pl.Series(rng.choice(["f1.csv", "f2.csv"], n)).sort(),
                                             _line=pl.int_range(2, n + 2, dtype=pl.Int64))
        norm = raw.clone()  # every value valid as text: nothing quarantined by the schema's checks
        rejects = pl.DataFrame(schema={"_file": pl.String, "_line": pl.Int64, "reason": pl.String, "record": pl.String})
        monkeypatch.setattr(quarantine, "quarantine_reasons",  # the schema's checks are not what is tested here
                            lambda extract, frame: pl.DataFrame(schema={"index": pl.Int64, "reason": pl.String}))
        got = sort_rows(e, raw, norm, rejects)
        want, conflict, changed = _reference(e, norm)
        assert got.stg.equals(want), name
        assert sorted(got.quarantine["_line"].to_list()) == sorted(raw["_line"].gather(conflict).to_list()), name
        assert got.raw.height == n - len(conflict)
        if len(e.key) == 1:
            assert set(got.changed[e.key[0]].to_list() if got.changed is not None else []) == changed
        assert conflict and want.height < n - len(conflict)  # the case is exercised: conflicts and repeats
