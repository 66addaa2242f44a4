"""Incremental nights give exactly what a recomputation from scratch gives (issue 15).

Two warehouses live through the same seven nights and the same feedback: one as operators run it
(rules/incremental.py carries and recomputes only what the new rows touch), one with
SENTINEL_FULL_RECOMPUTE=1 (every rule computed whole every night). After each night their rule hits,
model hits and scores and warnings must be identical, and the incremental side must really have been
incremental (rules carried over, incremental rules recomputed for a few persons, households,
accounts or pairs only; the scorer's scores carried when nothing it reads changed).

The nights: (1) the city without its last payments file; (2) that file and a death record arrive;
feedback from a verifier; (3) one more payment to the dead person, a move out of the city and a move
between households in tonight's registration snapshot, a scrapped car in tonight's vehicle snapshot,
three planted duplicate identities touched (paid again both, the other renamed, the subject paid
alone); (4) nothing new; (5) tonight's file re-sends night 3's payment under another payee (the old
payee's hit must go), and rows with no subject; (6) a payment inside the scorer's window to a person
already raised; (7) a payment after the window that makes a rule raise a model_outlier hit.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
from prefect.settings import PREFECT_API_URL

from casework.feedback import apply_feedback
from data_contracts.ids import normalise_id
from flows.cli import main
from flows.nightly import run_batch
from synthetic.city import answer_key_path
from tests.conftest import snapshot_of

HEADER = ("payment_id,program_code,program_name,id_number,name,household_id,bank_account,amount,period,pay_date,"
          "county_code,township,village,approved_by\n")


def table(wh: Path, query: str) -> pl.DataFrame:
    with duckdb.connect(str(wh), read_only=True) as con:
        df = pl.from_arrow(con.sql(query).to_arrow_table())
    return df.sort(df.columns, nulls_last=True)


def compare(inc: Path, full: Path, night: int) -> None:
    for what, query in [
        ("rule_hits", "SELECT * FROM rule_hits"),
        ("model_hits", "SELECT * FROM model_hits"),
        ("model_scores", "SELECT * FROM model_scores"),
        # warning_id is salted per warehouse (settings), concluded_at is when each side took the feedback;
        # everything else must agree
        ("warnings", "SELECT * EXCLUDE (warning_id, concluded_at) FROM warnings"),
        ("warning_history", "SELECT * EXCLUDE (warning_id, file) FROM warning_history"),  # file: each side's returned list
    ]:
        a, b = table(inc, query), table(full, query)
        assert a.height > 0, (night, what)
        if not a.equals(b):
            diff = pl.concat([a, b]).unique(keep="none")
            cols = [c for c in diff.columns if diff[c].n_unique() > 1] or diff.columns
            raise AssertionError(f"night {night}: {what} differ ({a.height} rows incremental, {b.height} full) "
                                 f"in {cols}:\n{diff.select(cols)}")


def views_kept_equal_views(wh: Path, night: int) -> None:
    """mat_v_person and mat_v_payment, updated for the changed persons night after night, hold what
    the views compute from scratch (rules/materialised.py)."""
    with duckdb.connect(str(wh), read_only=True) as con:
        for view in ("v_person", "v_payment"):
            for a, b in ((f"mat_{view}", view), (view, f"mat_{view}")):
                n = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall()[0][0]
                assert n == 0, f"night {night}: {n} rows of {a} not in {b}"


def registration(path: Path) -> pl.DataFrame:
    text = path.read_bytes().decode("gb18030")
    return pl.read_csv(io.StringIO(text), infer_schema=False)


def write_registration(df: pl.DataFrame, path: Path) -> None:
    path.write_bytes(df.write_csv().encode("gb18030"))


def warning_id(wh: Path, category: str, subject: str) -> str:
    with duckdb.connect(str(wh), read_only=True) as con:
        return con.execute("SELECT warning_id FROM warnings WHERE category = ? AND subject_id = ? ORDER BY rule_id "
                           "LIMIT 1", [category, subject]).fetchall()[0][0]


def computed(wh: Path, batch: int) -> dict[str, str]:
    with duckdb.connect(str(wh), read_only=True) as con:
        return dict(con.execute("SELECT rule_id, computed FROM rule_runs WHERE batch_id = ? AND status = 'ran'",
                                [batch]).fetchall())


def test_incremental_nights_equal_full_recomputation(prefect_harness, small_city, tmp_path, monkeypatch):
    key = pl.read_csv(answer_key_path(small_city), infer_schema=False)
    late = pl.read_parquet(small_city / "payments-03.parquet").with_columns(id=normalise_id(pl.col("id_number")))
    planted = key["subject_id"].implode()
    paid = (late.filter((pl.col("program_code") == "GAOLING") & ~pl.col("id").is_in(planted)
                        & (pl.col("period").str.replace("-", "") == "202610"))
            .sort("id").unique("id", keep="first", maintain_order=True))
    who, name = paid["id"][0], paid["name"][0].strip()  # dies in July
    leaver = paid["id"][1]  # moves out of the city in May
    other, other_name = paid["id"][2], paid["name"][2].strip()  # night 5's payee of night 3's payment
    car_hh = key.filter((pl.col("kind") == "anomaly") & (pl.col("variant") == "car"))["subject_id"][0]
    asset_hh = key.filter((pl.col("kind") == "anomaly") & (pl.col("category") == "asset_ineligible"))["subject_id"].unique().sort()
    landing = tmp_path / "landing"
    shutil.copytree(small_city, landing, ignore=shutil.ignore_patterns("payments-03.parquet"))
    sides = {"incremental": tmp_path / "inc", "full": tmp_path / "full"}

    def night(n: int) -> dict:
        summaries = {}
        for side, root in sides.items():
            with monkeypatch.context() as m:
                if side == "full":
                    m.setenv("SENTINEL_FULL_RECOMPUTE", "1")
                summaries[side] = run_batch(landing, root / "w.duckdb", root / "out", dt.date(2026, 11, n))
        compare(sides["incremental"] / "w.duckdb", sides["full"] / "w.duckdb", n)
        views_kept_equal_views(sides["incremental"] / "w.duckdb", n)
        assert not summaries["full"]["scorer"].get("carried")
        assert summaries["full"]["rules"]["views"] == "built"
        return summaries["incremental"]

    assert night(1)["rules"]["views"] == "built"

    shutil.copy(small_city / "payments-03.parquet", landing)
    (landing / "death_records-night2.csv").write_bytes(
        f"身份证号,姓名,死亡日期,信息来源\n{who},{name},2026年7月10日,火化\n".encode("gb18030"))
    assert night(2)["rules"]["views"] == "updated"
    assert computed(sides["full"] / "w.duckdb", 2) and set(computed(sides["full"] / "w.duckdb", 2).values()) == {"full"}

    for root in sides.values():  # a verifier's conclusions, on each warehouse's own warning ids
        wh = root / "w.duckdb"
        returned = root / "returned.csv"
        returned.write_bytes(("预警编号,核查结论,核查说明\n"
                              f"{warning_id(wh, 'deceased_paid', who)},属实,已停发\n"
                              f"{warning_id(wh, 'asset_ineligible', asset_hh[0])},不属实,车辆已过户\n").encode("gb18030"))
        apply_feedback(wh, [returned], returned_by="test")

    (landing / "payments-night3.csv").write_text(
        HEADER + f"N3-1,GAOLING,高龄津贴,{who},{name},,6217000000000001,100,2026-11,2026-11-03,{who[:6]},,,\n",
        encoding="utf-8")
    reg_file = landing / "household_registration.csv"
    reg = registration(reg_file)
    ids = normalise_id(pl.col("公民身份号码"))
    mover = table(sides["incremental"] / "w.duckdb",
                  f"SELECT id_number FROM stg_household_registration WHERE household_id = '{asset_hh[-1]}' "
                  "AND relation_to_head <> '户主'")["id_number"][0]
    reg = reg.with_columns(
        pl.when(ids == leaver).then(pl.lit("迁出")).otherwise(pl.col("户口状态")).alias("户口状态"),
        pl.when(ids == leaver).then(pl.lit("2026/5/1")).otherwise(pl.col("状态变更日期")).alias("状态变更日期"),
        pl.when(ids == mover).then(pl.lit(mover[:6] + "999999999")).otherwise(pl.col("户号")).alias("户号"),
    )
    # three planted duplicate identities: both of one pair paid again in a new period (their pair's
    # evidence grows); the other person of the second (not its subject) renamed in the registration
    # (their pair is no longer one); the subject of the third alone paid again (its pair stays)
    dup = table(sides["incremental"] / "w.duckdb",
                "SELECT h.subject_id, h.finding_key, h.program_code, h.county_code, "
                "any_value(p.program_name) AS program_name FROM rule_hits h JOIN stg_payments p "
                "ON p.id_number = h.subject_id AND p.program_code = h.program_code "
                "WHERE h.rule_id = 'duplicate_identity' AND h.program_code IS NOT NULL GROUP BY ALL")
    assert dup.height >= 3, dup
    grown, renamed, alone = (dup.row(i, named=True) for i in range(3))
    with (landing / "payments-night3.csv").open("a", encoding="utf-8") as f:
        for i, (pair, pid) in enumerate(((grown, grown["subject_id"]), (grown, grown["finding_key"]),
                                         (alone, alone["subject_id"]))):  # alone: its pair must stay as it was
            f.write(f"N3-D{i},{pair['program_code']},{pair['program_name']},{pid},,,62170000000009{i},100,"
                    f"2026-11,2026-11-03,{pair['county_code']},,,\n")
    reg = reg.with_columns(pl.when(ids == renamed["finding_key"]).then(pl.lit("欧阳改名")).otherwise(pl.col("姓名"))
                           .alias("姓名"))
    write_registration(reg, reg_file)
    members = table(sides["incremental"] / "w.duckdb",
                    f"SELECT id_number FROM stg_household_registration WHERE household_id = '{car_hh}'")["id_number"]
    veh = pl.read_parquet(landing / "vehicle_registration.parquet")
    owner = normalise_id(pl.col("owner_id_number")).is_in(members.implode())
    veh.with_columns(status=pl.when(owner & (pl.col("vehicle_type") == "小型轿车")).then(pl.lit("报废"))
                     .otherwise(pl.col("status"))).write_parquet(landing / "vehicle_registration.parquet")
    night(3)
    modes = computed(sides["incremental"] / "w.duckdb", 3)
    assert modes["deceased_paid"] == "persons" and modes["asset_ineligible_vehicle"] == "households", modes
    assert modes["shared_account"] == "accounts" and modes["duplicate_identity"] == "pairs", modes
    for side in sides.values():  # the grown pair is still one, the renamed pair no longer
        pair_hits = table(side / "w.duckdb", "SELECT subject_id, finding_key, evidence_size FROM rule_hits "
                                             "WHERE rule_id = 'duplicate_identity'")
        assert pair_hits.filter(pl.col("subject_id") == renamed["subject_id"],
                                pl.col("finding_key") == renamed["finding_key"]).height == 0
        for pair in (grown, alone):
            assert pair_hits.filter(pl.col("subject_id") == pair["subject_id"],
                                    pl.col("finding_key") == pair["finding_key"]).height == 1
    with duckdb.connect(str(sides["incremental"] / "w.duckdb"), read_only=True) as con:  # a handful, not the city
        assert 3 <= con.execute("SELECT max(subjects) FROM rule_runs WHERE batch_id = 3").fetchall()[0][0] < 50

    s4 = night(4)  # nothing new: the scorer's scores and hits carried over too
    assert s4["rules"]["views"] == "kept", s4["rules"]
    assert s4["scorer"].get("carried") and s4["scorer"]["persons_scored"] > 1000, s4["scorer"]
    modes = computed(sides["incremental"] / "w.duckdb", 4)
    # every rule, eligible_not_receiving too: it reads the batch date only to know which periods have
    # ended, the same on Nov 3 and Nov 4 (rules/incremental.py as_of_read); compared with the full side
    assert set(modes.values()) == {"carried"}, modes

    # ... and rows that name no subject at all: a payment without an ID number, household or account
    # (identity_unverified makes it a finding of its own), a claim without an ID on a certificate
    # someone already claimed on (training_certificate_reused counts it)
    (landing / "payments-night5.csv").write_text(
        HEADER + f"N3-1,GAOLING,高龄津贴,{other},{other_name},,6217000000000001,100,2026-11,2026-11-03,{other[:6]},,,\n"
        f"N5-2,GAOLING,高龄津贴,,{other_name},,,100,2026-11,2026-11-05,{other[:6]},,,\n", encoding="utf-8")
    claim = pl.read_csv(small_city / "training_claims.csv", infer_schema=False, encoding="gb18030").row(0, named=True)
    (landing / "training_claims-night5.csv").write_text(
        "claim_id,id_number,name,certificate_number,occupation,level,training_org,county_code,claim_date,amount\n"
        f"N5-C1,,无名,{claim['certificate_number']},{claim['occupation']},{claim['level']},{claim['training_org']},"
        f"{claim['county_code']},2026年11月5日,1500.00\n", encoding="utf-8")
    s5 = night(5)  # tonight's payments are for a month after the scorer's window: its scores stand
    assert s5["rules"]["views"] == "updated", s5["rules"]  # with a payment naming no one
    assert s5["scorer"].get("carried"), s5["scorer"]
    with duckdb.connect(str(sides["incremental"] / "w.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM rule_hits WHERE rule_id = 'identity_unverified' "
                           "AND subject_id LIKE '%N5-2'").fetchall()[0][0] == 1
        assert con.execute("SELECT count(*) FROM rule_hits WHERE rule_id = 'training_certificate_reused' "
                           "AND evidence LIKE '%N5-C1%'").fetchall()[0][0] >= 1
    with duckdb.connect(str(sides["incremental"] / "w.duckdb"), read_only=True) as con:
        persons = con.execute("SELECT max(subjects) FROM rule_runs WHERE batch_id = 5 AND computed = 'persons'"
                              ).fetchall()[0][0]
        assert 2 <= persons <= 5, persons  # the old payee and the new one (and the approver, if any)
        assert con.execute("SELECT count(*) FROM rule_hits WHERE rule_id = 'deceased_paid' AND subject_id = ? "
                           "AND evidence LIKE '%N3-1%'", [who]).fetchall()[0][0] == 0

    # a payment of a month inside the scorer's window, to a person the rules raise already: the
    # raised persons stay the same, the features do not, so the scores are computed again
    (landing / "payments-night6.csv").write_text(
        HEADER + f"N6-1,GAOLING,高龄津贴,{who},{name},,6217000000000001,100,2026-10,2026-11-06,{who[:6]},,,\n",
        encoding="utf-8")
    s6 = night(6)
    assert not s6["scorer"].get("carried"), s6["scorer"]

    # a GAOLING payment of 7 yuan for the month after the window to the highest-ranked model_outlier
    # hit: a rule raises them now (their age, or the amount), so the scores stand but the hits are
    # chosen again without them
    top = table(sides["incremental"] / "w.duckdb", "SELECT h.subject_id, h.county_code FROM model_hits h "
                "JOIN model_scores s ON s.id_number = h.subject_id ORDER BY s.score DESC, h.subject_id LIMIT 1"
                ).row(0, named=True)
    (landing / "payments-night7.csv").write_text(
        HEADER + f"N7-1,GAOLING,高龄津贴,{top['subject_id']},,,6217000000000007,7,2026-11,2026-11-07,"
                 f"{top['county_code'] or top['subject_id'][:6]},,,\n", encoding="utf-8")
    s7 = night(7)
    assert s7["scorer"].get("carried"), s7["scorer"]
    assert table(sides["incremental"] / "w.duckdb", f"SELECT * FROM model_hits WHERE subject_id = '{top['subject_id']}'"
                 ).height == 0


# ----------------------------------------------------------------------------- kill -9 at points of an incremental night

KILL_POINTS = [  # a line the batch logs (sentinel -v), and where in the night that is
    ("data_contracts.ingest INFO payments:", "the ingest, before its transaction commits"),
    ("rules.execute INFO rule deceased_paid:", "the rules, some carried or recomputed, in their transaction"),
    ("models.scorer INFO scorer:", "after the scorer, before the warnings"),
    ("prefect.task_runs INFO lists:", "the lists written to staging, before the commit point"),
]


def files_of(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_kill_9_at_points_of_an_incremental_night(prefect_harness, demo_run, tmp_path):
    """An incremental night killed at several points leaves the warehouse and the lists as they were,
    and the next night gives exactly the warnings of a night that was never killed."""
    landing = tmp_path / "landing"
    shutil.copytree(demo_run["landing"], landing)
    with duckdb.connect(str(demo_run["warehouse"]), read_only=True) as con:
        some = con.execute("SELECT id_number, name FROM stg_payments WHERE program_code = 'GAOLING' AND "
                           "id_number_valid ORDER BY id_number LIMIT 3").fetchall()
    (landing / "payments-night2.csv").write_text(HEADER + "".join(
        f"K2-{i},GAOLING,高龄津贴,{pid},{name},,62170000000000{i:02d},100,2026-11,2026-11-02,{pid[:6]},,,\n"
        for i, (pid, name) in enumerate(some)), encoding="utf-8")
    args = ["--input", str(landing), "--as-of", "2026-11-02"]

    def fresh(name: str) -> tuple[Path, Path]:
        root = tmp_path / name
        root.mkdir()
        wh, out = root / "w.duckdb", root / "out"
        shutil.copyfile(demo_run["warehouse"], wh)
        shutil.copytree(demo_run["out"], out)
        return wh, out

    ref_wh, ref_out = fresh("reference")
    assert main(["run", *args, "--warehouse", str(ref_wh), "--out", str(ref_out)]) == 0
    assert set(computed(ref_wh, 2).values()) >= {"carried", "persons"}  # the night was incremental
    reference = table(ref_wh, "SELECT * FROM warnings")

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}  # the session's Prefect server
    for i, (line, where) in enumerate(KILL_POINTS):
        wh, out = fresh(f"killed-{i}")
        before, lists_before = snapshot_of(wh), files_of(out)
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "-v", "run", *args, "--warehouse", str(wh),
                                 "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        seen = False
        for text in proc.stdout:
            if line in text:
                os.killpg(proc.pid, signal.SIGKILL)
                seen = True
                break
        proc.stdout.close()
        proc.wait()
        assert seen, f"the batch never logged {line!r} ({where})"
        assert snapshot_of(wh) == before, where
        assert files_of(out) == lists_before, where
        # the next night runs normally and gives what the night never killed gave
        assert main(["run", *args, "--warehouse", str(wh), "--out", str(out)]) == 0, where
        assert table(wh, "SELECT * FROM warnings").equals(reference), where
        assert not list(wh.parent.glob(".*.batch*")), where


def test_a_rule_that_only_asks_which_periods_have_ended_keeps_its_fingerprint_within_a_month():
    """eligible_not_receiving reads the batch date only as ``period_end(period) <= $as_of``: its
    fingerprint (rule_runs) is the same from one month end to the day before the next, so a night
    with nothing new carries its hits (test above: night 4); another month end gives another."""
    from rules.catalog import load_catalog
    from rules.compile import compile_rule
    from rules.incremental import as_of_read, fingerprint

    (rule,) = [compile_rule(r) for r in load_catalog() if r.id == "eligible_not_receiving"]
    days = [dt.date(2026, 10, 31), dt.date(2026, 11, 1), dt.date(2026, 11, 17), dt.date(2026, 11, 29)]
    assert {fingerprint(rule, d) for d in days} == {fingerprint(rule, days[0])}
    assert fingerprint(rule, dt.date(2026, 11, 30)) != fingerprint(rule, days[0])
    assert fingerprint(rule, dt.date(2026, 10, 30)) != fingerprint(rule, days[0])
    assert as_of_read("SELECT 1 WHERE period_end(p.period) <= $as_of", dt.date(2024, 3, 1)) == dt.date(2024, 2, 29)
    assert as_of_read("SELECT 1 WHERE period_end(p) <= $as_of AND note = '$as_of'", dt.date(2026, 11, 5)) \
        == dt.date(2026, 10, 31)  # a string is not a use
    # any other use of the date, or another comparison: the date itself
    for other in ("SELECT age_years(birth_date, $as_of) WHERE period_end(period) <= $as_of",
                  "SELECT 1 WHERE period_end(p) <= $as_of - INTERVAL 10 DAY",
                  "SELECT 1 WHERE INTERVAL 1 MONTH + period_end(p) <= $as_of",
                  "SELECT 1 WHERE period_end(p) + 1 <= $as_of",
                  "SELECT 1 WHERE period_end(p) < $as_of",
                  "SELECT 1 WHERE period_end(p) <= $as_of -- period_end(p) <= $as_of\n OR $as_of > d"):
        assert as_of_read(other, dt.date(2026, 11, 5)) == dt.date(2026, 11, 5), other


def test_the_batch_dates_of_one_month_give_eligible_not_receiving_the_same_hits(demo_run, tmp_path, monkeypatch):
    """What as_of_read's fingerprint stands on, on the small city's warehouse: period_end is a month's
    last day, and eligible_not_receiving finds the same hits on every batch date from one month end
    to the day before the next (the nights above are all in one month; this crosses month ends)."""
    from rules.execute import run_rules

    monkeypatch.setenv("SENTINEL_FULL_RECOMPUTE", "1")  # computed each time, never carried
    wh = tmp_path / "w.duckdb"
    shutil.copy(demo_run["warehouse"], wh)
    hits = {}
    with duckdb.connect(str(wh)) as con:
        assert con.execute("SELECT bool_and(period_end(strftime(d, '%Y-%m')) = last_day(d)) "
                           "FROM range(DATE '2023-01-01', DATE '2027-01-01', INTERVAL 1 DAY) t(d)").fetchall()[0][0]
        for day in (dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 30), dt.date(2026, 10, 31),
                    dt.date(2026, 11, 1), dt.date(2026, 11, 3)):
            assert run_rules(con, day, 99, only=["eligible_not_receiving"])["computed"] == {"full": 1}
            hits[day] = sorted(con.execute("SELECT * EXCLUDE (batch_id) FROM rule_hits "
                                           "WHERE rule_id = 'eligible_not_receiving'").fetchall(), key=str)
    assert hits[dt.date(2026, 10, 31)]  # the city's GAOLING for October is paid: some are owed
    assert hits[dt.date(2026, 9, 30)] == hits[dt.date(2026, 10, 1)] == hits[dt.date(2026, 10, 30)]
    assert hits[dt.date(2026, 10, 31)] == hits[dt.date(2026, 11, 1)] == hits[dt.date(2026, 11, 3)]
    assert hits[dt.date(2026, 10, 30)] != hits[dt.date(2026, 10, 31)]  # a month end moves the judged period
