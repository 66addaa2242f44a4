"""`sentinel run` through the real Prefect flow (one session-wide test server)."""
from __future__ import annotations

import duckdb

from flows.cli import main
from tests.conftest import PAYMENT_HEADER, make_id, payment, snapshot_of, write_csv


def test_sentinel_run_ingests_and_refuses_with_exit_2(prefect_harness, minimal_landing, tmp_path, capsys):
    wh, out = tmp_path / "w.duckdb", tmp_path / "out"
    rc = main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out),
               "--as-of", "2026-11-01"])
    assert rc == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT batch_id, as_of::VARCHAR, outcome, rows_read, rows_loaded FROM runs").fetchall() == [
            (1, "2026-11-01", "succeeded", 4, 4)]
        assert con.execute("SELECT count(*) FROM stg_payments").fetchone() == (2,)

    before = snapshot_of(wh)
    bad = write_csv(minimal_landing / "payments-late.csv", [payment("P3", make_id(seq="035"))],
                    [h for h in PAYMENT_HEADER if h != "period"])
    capsys.readouterr()
    rc = main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out)])
    assert rc == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("sentinel: ") and bad.name in last and "period" in last
    assert snapshot_of(wh) == before
