"""Shared fixtures: Prefect kept offline in a temporary home, landing-directory builders."""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import random
import tempfile
from pathlib import Path

import pytest

# Prefect: offline, quiet, state in a temporary directory (STACK-NOTES.md). Set before any import of prefect.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="sentinel-prefect-"))
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"

AS_OF = dt.date(2026, 11, 1)


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
