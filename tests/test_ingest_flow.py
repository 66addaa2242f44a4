"""`sentinel run` through the real Prefect flow (one session-wide test server)."""
from __future__ import annotations

import datetime as dt

import duckdb

from flows.cli import main
from tests.conftest import PAYMENT_HEADER, make_id, payment, snapshot_of, write_csv


def test_sentinel_run_ingests_and_refuses_with_exit_2(prefect_harness, minimal_landing, tmp_path, capsys):
    wh, out = tmp_path / "w.duckdb", tmp_path / "out"
    rc = main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out),
               "--as-of", "2026-11-01"])
    assert rc == 0
    assert "quarantined" not in capsys.readouterr().out  # a night with nothing quarantined says nothing of it
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


def test_a_shrunk_snapshot_is_refused_with_exit_2_and_loads_when_confirmed(prefect_harness, minimal_landing, tmp_path,
                                                                          capsys):
    import pytest

    from data_contracts.errors import RefusedInput
    from flows.nightly import run_batch
    from tests.conftest import HOUSEHOLD_HEADER

    wh, out = tmp_path / "w.duckdb", tmp_path / "out"
    assert main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out),
                 "--as-of", "2026-11-01"]) == 0
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "## Landing directory" in summary and "| household_registration.csv | file | loaded |" in summary
    before = snapshot_of(wh)
    (minimal_landing / "household_registration.csv").write_text(",".join(HOUSEHOLD_HEADER) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out),
                 "--as-of", "2026-11-02"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "household_registration.csv" in last and "no loadable row" in last and "against 2 rows" in last
    assert snapshot_of(wh) == before
    with pytest.raises(RefusedInput, match="not a snapshot extract"):  # before Prefect starts
        run_batch(minimal_landing, wh, out, None, accept_shrunk_snapshot=["payments"])
    run_batch(minimal_landing, wh, out, dt.date(2026, 11, 2), accept_shrunk_snapshot=["household_registration"])
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM stg_household_registration").fetchone() == (0,)


def test_the_result_line_says_how_many_rows_were_quarantined(prefect_harness, minimal_landing, tmp_path, capsys):
    """A night whose payments were all quarantined must not read like a quiet night (a newcomer's
    trial: every payment of a file quarantined, and the line said only '0 new, 0 open warnings')."""
    write_csv(minimal_landing / "payments-late.csv", [payment("P3", make_id(seq="035"), pay_date="soon"),
                                                      payment("P4", make_id(seq="035"), pay_date="later")],
              PAYMENT_HEADER)
    wh, out = tmp_path / "w.duckdb", tmp_path / "out"
    assert main(["run", "--input", str(minimal_landing), "--warehouse", str(wh), "--out", str(out),
                 "--as-of", "2026-11-01"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("batch 1 of 2026-11-01: ")
    assert line.endswith("; 2 of 6 rows read quarantined, 2 of 4 in payments (why: summary.md, table quarantine)")
