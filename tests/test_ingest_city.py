"""The ingest on a small synthetic city (synthetic.city.generate) against the generator's manifest."""
from __future__ import annotations

import json

import duckdb
import pytest

from data_contracts.extracts import EXTRACTS
from data_contracts.ingest import ingest
from tests.conftest import AS_OF


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    from synthetic.city import generate, manifest_path

    out = tmp_path_factory.mktemp("city") / "landing"
    generate(persons=3000, seed=3, out=out, as_of=AS_OF)
    return out, json.loads(manifest_path(out).read_text())


def test_city_counts_match_the_generators_manifest(city, tmp_path):
    landing, manifest = city
    wh = tmp_path / "w.duckdb"
    r = ingest(landing, wh, AS_OF)
    with duckdb.connect(str(wh), read_only=True) as con:
        for name in EXTRACTS:
            read, loaded, quarantined = con.execute(
                "SELECT rows_read, rows_loaded, rows_quarantined FROM run_extracts WHERE batch_id = ? AND extract = ?",
                [r.batch_id, name]).fetchone()
            assert read == manifest["rows_written"][name], name
            assert quarantined == manifest["rows_unreadable"][name], name
            assert read == loaded + quarantined, name
        assert con.execute("SELECT count(*) FROM stg_payments").fetchone()[0] == manifest["distinct_payments"]
        # every ID the generator wrote in a messy spelling comes out as 18 characters
        bad_shape = con.execute("SELECT count(*) FROM stg_household_registration "
                                "WHERE NOT regexp_full_match(id_number, '[0-9]{17}[0-9X]')").fetchone()[0]
        assert bad_shape == 0
        encodings = {e for (e,) in con.execute("SELECT DISTINCT encoding FROM ingested_files").fetchall()}
        assert {"gb18030", "utf-8-sig"} <= encodings


def test_city_delivered_twice_changes_nothing(city, tmp_path):
    landing, _ = city
    wh = tmp_path / "w.duckdb"
    ingest(landing, wh, AS_OF)

    def state():
        with duckdb.connect(str(wh), read_only=True) as con:
            return {n: con.execute(f"SELECT * FROM stg_{n} ORDER BY ALL").fetchall() for n in EXTRACTS} | {
                "raw": [con.execute(f"SELECT count(*) FROM raw_{n}").fetchone() for n in EXTRACTS],
                "quarantine": con.execute("SELECT count(*) FROM quarantine").fetchone()}

    before = state()
    ingest(landing, wh, AS_OF)
    assert state() == before
