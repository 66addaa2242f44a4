"""Shared fixtures: Prefect kept offline in a temporary home, landing-directory builders."""
from __future__ import annotations

import atexit
import csv
import datetime as dt
import hashlib
import io
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest

# Prefect: offline, quiet, state in a temporary directory (STACK-NOTES.md). Set before any import of prefect.
# Under pytest-xdist each worker keeps its own state in a folder of that home: the temporary servers
# that the subprocess tests start would otherwise share one SQLite database (and its migrations).
_prefect_home = os.environ.get("PREFECT_HOME")
if not _prefect_home:  # made here (the run's first process: xdist's workers inherit it), removed at its exit
    _prefect_home = tempfile.mkdtemp(prefix="sentinel-prefect-")
    atexit.register(shutil.rmtree, _prefect_home, ignore_errors=True)
if os.environ.get("PYTEST_XDIST_WORKER"):
    _prefect_home = os.path.join(_prefect_home, os.environ["PYTEST_XDIST_WORKER"])
    os.makedirs(_prefect_home, exist_ok=True)
os.environ["PREFECT_HOME"] = _prefect_home
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"

AS_OF = dt.date(2026, 11, 1)


# ----------------------------------------------------------------------------- running in parallel
# `make test` runs the suite on two pytest-xdist workers, handing each the next test as it finishes
# one (`-n 2 --dist loadgroup`; no test is in a group, and pytest 9.2 with pytest-xdist 3.8 would
# ignore an xdist_group mark anyway: pytest-xdist issue 1386). Each worker has its own temporary
# folders, Prefect home (above), Prefect test server and session fixtures; two things are arranged
# here.

# The longest tests start first, longest first (seconds beside a second busy worker), so that none of
# them is left to run alone at the end. The others keep their order, but for the timed tests (below),
# which come last.
LONGEST_FIRST = (
    "tests/test_spark.py::",  # 150-250 s: a Spark cluster, a session, a whole batch on Spark (one test)
    "tests/test_replay.py::test_nights_replayed_day_by_day_end_as_one_full_run",  # 100 s: twenty batches
    "tests/test_serve.py::",  # 50-120 s: a Prefect server of its own, a cron minute, a served run
    "tests/test_incremental.py::",  # 60-80 s each: five nights twice; four killed nights and their reruns
    # 30-50 s each: `sentinel run` with the temporary Prefect server it starts, a 500,000-person city
    "tests/test_nightly.py::test_no_full_id_number_in_any_log_line",
    "tests/test_paths.py::test_outputs_are_readable_by_the_group_and_state_stays_beside_the_warehouse",
    "tests/test_paths.py::test_ctrl_c_at_the_terminal_during_the_commit_does_not_hang",
    "tests/test_oversight.py::test_audit_of_a_larger_city_flags_only_where_the_planted_facts_differ",
    "tests/test_paths.py::test_ctrl_c_at_the_terminal_stops_the_batch_and_everything_it_started",
    "tests/test_nightly.py::test_kill_9_in_the_middle_leaves_the_warehouse_as_it_was",
    "tests/test_three_nights.py::",
)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        if item.get_closest_marker("timed"):
            return len(LONGEST_FIRST) + 1
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


# A test marked `timed` asserts that something takes at most a few seconds of wall time (a refusal
# before Prefect starts): it runs with no other test of the suite beside it, so that the bound is
# not measured against the suite's own load. Every other test holds a shared lock while it runs
# (setup and teardown included), a timed test the exclusive one; a timed test waiting for it holds
# the turnstile, so that no other test starts meanwhile.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    workerinput = getattr(item.config, "workerinput", None)
    if workerinput is None:  # not under pytest-xdist: nothing runs beside it
        return (yield)
    import fcntl

    shared = Path(item.config.option.basetemp).parent  # the run's base folder, above each worker's
    mode = fcntl.LOCK_EX if item.get_closest_marker("timed") else fcntl.LOCK_SH
    with open(shared / "tests.turnstile", "a") as turnstile, open(shared / "tests.lock", "a") as lock:
        fcntl.flock(turnstile, mode)
        fcntl.flock(lock, mode)
        fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# ----------------------------------------------------------------------------- ID numbers

def check_char(first17: str) -> str:
    """Reference check character from python-stdnum (it expects the number with a check digit)."""
    from stdnum.cn import ric

    return ric.calc_check_digit(first17 + "0")


def make_id(region: str = "110105", birth: str = "19491231", seq: str = "002") -> str:
    first17 = region + birth + seq
    return first17 + check_char(first17)


def random_ids(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        birth = dt.date(1920, 1, 1) + dt.timedelta(days=rnd.randrange(0, 365 * 100))
        out.append(make_id(f"{rnd.randrange(110000, 659999)}", birth.strftime("%Y%m%d"), f"{rnd.randrange(0, 1000):03d}"))
    return out


# ----------------------------------------------------------------------------- landing directories

HOUSEHOLD_HEADER = ["id_number", "name", "sex", "birth_date", "household_id", "relation_to_head", "county_code",
                    "township", "village", "status", "status_date"]
PAYMENT_HEADER = ["payment_id", "program_code", "program_name", "id_number", "name", "household_id", "bank_account",
                  "amount", "period", "pay_date", "county_code", "township", "village", "approved_by"]


def person(id_number: str, name: str = "张三", **kw) -> dict:
    row = dict(id_number=id_number, name=name, sex="男", birth_date="1949-12-31", household_id="H001",
               relation_to_head="户主", county_code="110105", township="朝阳街道", village="幸福村",
               status="正常", status_date="")
    row.update(kw)
    return row


def payment(payment_id: str, id_number: str, **kw) -> dict:
    row = dict(payment_id=payment_id, program_code="GAOLING", program_name="高龄津贴", id_number=id_number,
               name="张三", household_id="H001", bank_account="6228480000000001", amount="100.00",
               period="2026-09", pay_date="2026-09-10", county_code="110105", township="朝阳街道",
               village="幸福村", approved_by="")
    row.update(kw)
    return row


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None, encoding: str = "utf-8",
              rename: dict[str, str] | None = None) -> Path:
    """Write rows as CSV; ``header`` picks and orders the canonical columns, ``rename`` respells
    them (e.g. Chinese aliases); ``encoding`` is utf-8, utf-8-sig (BOM) or gb18030."""
    header = header or list(rows[0].keys())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([(rename or {}).get(h, h) for h in header])
    for r in rows:
        w.writerow([r.get(h, "") for h in header])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def snapshot_of(path: Path) -> dict:
    """Every file of a warehouse (DuckDB file plus any WAL) with its sha256: 'byte for byte as it was'."""
    out = {}
    for p in sorted(path.parent.glob(path.name + "*")):
        if p.is_file():  # not the raw folder (<name>.raw/: files no committed batch lists do not count)
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def minimal_landing(tmp_path: Path) -> Path:
    """A valid landing directory: two persons, two payments."""
    d = tmp_path / "landing"
    a, b = make_id(seq="013"), make_id(birth="19400101", seq="024")
    write_csv(d / "household_registration.csv", [person(a), person(b, "李四", sex="女")], HOUSEHOLD_HEADER)
    write_csv(d / "payments.csv", [payment("P1", a), payment("P2", b, name="李四")], PAYMENT_HEADER)
    return d


# ----------------------------------------------------------------------------- generated cities and runs

@pytest.fixture(scope="session")
def small_city(tmp_path_factory) -> Path:
    """A generated 20,000-person landing directory (answer key beside it), made once per session."""
    from synthetic.city import generate

    landing = tmp_path_factory.mktemp("city") / "landing"
    generate(persons=20_000, seed=11, out=landing, as_of=AS_OF)
    return landing


@pytest.fixture(scope="session")
def demo_run(prefect_harness, small_city, tmp_path_factory) -> dict:
    """One full nightly batch on the small city through the real flow: warehouse and outputs."""
    from flows.nightly import run_batch

    root = tmp_path_factory.mktemp("demo")
    wh, out = root / "warehouse.duckdb", root / "out"
    summary = run_batch(small_city, wh, out, AS_OF, xlsx=True)
    return {"warehouse": wh, "out": out, "summary": summary, "landing": small_city}
