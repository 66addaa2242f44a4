"""One pandera ``DataFrameModel`` per extract: the contract for a row of normalised values.

They validate the *collected* polars frame that :mod:`data_contracts.ingest` builds from a
delivery (values normalised by :mod:`data_contracts.normalise` and :mod:`data_contracts.ids`),
with ``lazy=True`` so every failure is reported; each failing row is quarantined with the
reasons derived from ``failure_cases`` (see ``ingest.quarantine_reasons``).

Conventions in every model:

- a non-nullable field is a key, or a date, datetime, period or amount the row cannot be
  read without: null there means the row is quarantined ("no key" / "required value empty" /
  "unparseable ..." when a value was delivered but parses as nothing);
- text columns are nullable: an empty township or name is a fact about the record (the
  rules may flag it), not a reason to drop the row (EXTRACTS.md: a row is quarantined only
  when it cannot be interpreted at all);
- every date, datetime, period or amount column ``c`` has a boolean companion
  ``c__unparseable`` (a value was delivered but parses as nothing) that must be false; it is
  what catches a bad value in a *nullable* column such as ``status_date``;
- every domain check the catalogue declares for a column ``c`` (``extracts.Column.checks``) is a
  boolean companion ``c__<check>`` that must be false (:func:`schema_for` adds them to the model;
  :data:`REASONS` names the quarantine reason of each);
- every identity-number column ``c`` has ``c_valid`` (length 18, real birth date not after the
  batch date, MOD 11-2 check character). An invalid number is loaded, never quarantined.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandera.polars as pa
import polars as pl

from data_contracts.extracts import DOMAINS, EXTRACTS

AMOUNT = pl.Decimal(18, 2)
TS = pl.Datetime("us")


def _ok(description: str) -> pa.Field:
    """A ``<col>__unparseable`` companion: must be false."""
    return pa.Field(eq=False, nullable=False, description=f"value delivered in {description} but unparseable")


def _valid(col: str) -> pa.Field:
    return pa.Field(nullable=False, description=f"{col} is a valid 18-character identity number")


class _Base(pa.DataFrameModel):
    class Config:
        strict = False  # lineage columns (_file, _line) travel alongside
        coerce = False


class HouseholdRegistration(_Base):
    """户籍人口信息 (public security): snapshot, one row per person."""
    id_number: str = pa.Field(nullable=False, description="resident identity number, normalised (key)")
    id_number_valid: bool = _valid("id_number")
    name: str = pa.Field(nullable=True, description="name; minority-name separators folded to ·")
    sex: str = pa.Field(nullable=True, description="男/女 (1/2 mapped)")
    birth_date: dt.date = pa.Field(nullable=False, description="date of birth")
    birth_date__unparseable: bool = _ok("birth_date")
    household_id: str = pa.Field(nullable=True, description="household number; members of one household share it")
    relation_to_head: str = pa.Field(nullable=True, description="relation to the head: 户主, 配偶, 子, 女, ...")
    county_code: str = pa.Field(nullable=True, description="6-digit county code (GB/T 2260)")
    township: str = pa.Field(nullable=True, description="township or street")
    village: str = pa.Field(nullable=True, description="village or community")
    status: str = pa.Field(nullable=True, description="正常 (registered here), 死亡 (deceased), 迁出 (moved out)")
    status_date: dt.date = pa.Field(nullable=True, description="date of death or move-out")
    status_date__unparseable: bool = _ok("status_date")


class DeathRecords(_Base):
    """死亡人员信息 (cremation and medical death certificates): incremental by id_number."""
    id_number: str = pa.Field(nullable=False, description="identity number of the deceased, normalised (key)")
    id_number_valid: bool = _valid("id_number")
    name: str = pa.Field(nullable=True, description="name")
    death_date: dt.date = pa.Field(nullable=False, description="date of death")
    death_date__unparseable: bool = _ok("death_date")
    source: str = pa.Field(nullable=True, description="火化, 医院 or 公安")


class VehicleRegistration(_Base):
    """机动车登记信息 (traffic police): snapshot, one row per plate."""
    plate_number: str = pa.Field(nullable=False, description="plate number (key)")
    owner_id_number: str = pa.Field(nullable=True, description="owner's identity number, normalised")
    owner_id_number_valid: bool = _valid("owner_id_number")
    owner_name: str = pa.Field(nullable=True, description="owner's name")
    vehicle_type: str = pa.Field(nullable=True, description="小型轿车, ..., 残疾人专用车")
    registration_date: dt.date = pa.Field(nullable=False, description="first registration date")
    registration_date__unparseable: bool = _ok("registration_date")
    status: str = pa.Field(nullable=True, description="正常, 注销, 报废, 被盗抢")
    assessed_value: AMOUNT = pa.Field(nullable=True, description="assessed or purchase value, yuan")
    assessed_value__unparseable: bool = _ok("assessed_value")


class PropertyRegistration(_Base):
    """不动产登记信息 (real-estate registry): snapshot, one row per certificate and owner."""
    certificate_number: str = pa.Field(nullable=False, description="certificate number; co-owners repeat it (key)")
    owner_id_number: str = pa.Field(nullable=False, description="owner's identity number, normalised (key)")
    owner_id_number_valid: bool = _valid("owner_id_number")
    owner_name: str = pa.Field(nullable=True, description="owner's name")
    usage: str = pa.Field(nullable=True, description="住宅, 商业, 办公, 工业, 车位, 其他")
    area_m2: AMOUNT = pa.Field(nullable=False, description="floor area, square metres")
    area_m2__unparseable: bool = _ok("area_m2")
    county_code: str = pa.Field(nullable=True, description="county where the property lies")
    registration_date: dt.date = pa.Field(nullable=False, description="registration date")
    registration_date__unparseable: bool = _ok("registration_date")
    status: str = pa.Field(nullable=True, description="现势 (current) or 注销 (cancelled)")


class Payments(_Base):
    """资金发放明细 (one-card payment system): incremental by payment_id."""
    payment_id: str = pa.Field(nullable=False, description="payment serial number (key)")
    program_code: str = pa.Field(nullable=True, description="programme code (POLICY.md)")
    program_name: str = pa.Field(nullable=True, description="programme name (optional column)")
    id_number: str = pa.Field(nullable=True, description="payee's identity number; invalid/unknown is a finding")
    id_number_valid: bool = _valid("id_number")
    name: str = pa.Field(nullable=True, description="payee's name")
    household_id: str = pa.Field(nullable=True, description="household (household programmes pay the head)")
    bank_account: str = pa.Field(nullable=True, description="bank account or social-security card number")
    amount: AMOUNT = pa.Field(nullable=False, description="amount paid, yuan")
    amount__unparseable: bool = _ok("amount")
    period: str = pa.Field(nullable=False, str_matches=r"^\d{4}-(0[1-9]|1[0-2])$",
                           description="the month the money is for, YYYY-MM")
    period__unparseable: bool = _ok("period")
    pay_date: dt.date = pa.Field(nullable=False, description="date paid")
    pay_date__unparseable: bool = _ok("pay_date")
    county_code: str = pa.Field(nullable=True, description="the county that pays")
    township: str = pa.Field(nullable=True, description="township")
    village: str = pa.Field(nullable=True, description="village or community")
    approved_by: str = pa.Field(nullable=True, description="identity number of the approving official")
    approved_by_valid: bool = _valid("approved_by")


class PublicServants(_Base):
    """财政供养人员及村(社区)两委成员: snapshot, one row per person."""
    id_number: str = pa.Field(nullable=False, description="identity number, normalised (key)")
    id_number_valid: bool = _valid("id_number")
    name: str = pa.Field(nullable=True, description="name")
    employer: str = pa.Field(nullable=True, description="employer")
    role: str = pa.Field(nullable=True, description="公务员, 事业单位, 国有企业, 村两委, 社区两委")
    county_code: str = pa.Field(nullable=True, description="county")
    township: str = pa.Field(nullable=True, description="township")
    village: str = pa.Field(nullable=True, description="village or community")
    start_date: dt.date = pa.Field(nullable=False, description="start of the post")
    start_date__unparseable: bool = _ok("start_date")
    end_date: dt.date = pa.Field(nullable=True, description="end of the post; null = still in post")
    end_date__unparseable: bool = _ok("end_date")


class TrainingClaims(_Base):
    """职业技能培训补贴申领 (human resources and social security): incremental by claim_id."""
    claim_id: str = pa.Field(nullable=False, description="claim number (key)")
    id_number: str = pa.Field(nullable=True, description="claimant's identity number, normalised")
    id_number_valid: bool = _valid("id_number")
    name: str = pa.Field(nullable=True, description="claimant's name")
    certificate_number: str = pa.Field(nullable=True, description="skill certificate number")
    occupation: str = pa.Field(nullable=True, description="occupation (工种)")
    level: str = pa.Field(nullable=True, description="certificate level")
    training_org: str = pa.Field(nullable=True, description="training organisation")
    county_code: str = pa.Field(nullable=True, description="county of the claim")
    claim_date: dt.date = pa.Field(nullable=False, description="claim date")
    claim_date__unparseable: bool = _ok("claim_date")
    amount: AMOUNT = pa.Field(nullable=False, description="subsidy, yuan")
    amount__unparseable: bool = _ok("amount")


class ServiceOrders(_Base):
    """居家养老服务工单 (home-care service orders): incremental by order_id."""
    order_id: str = pa.Field(nullable=False, description="work order number (key)")
    elder_id_number: str = pa.Field(nullable=True, description="the elder's identity number, normalised")
    elder_id_number_valid: bool = _valid("elder_id_number")
    worker_id: str = pa.Field(nullable=True, description="care worker number")
    provider: str = pa.Field(nullable=True, description="service provider")
    service_type: str = pa.Field(nullable=True, description="助餐, 助洁, 助浴, 助医, 陪护")
    start_time: TS = pa.Field(nullable=False, description="service start")
    start_time__unparseable: bool = _ok("start_time")
    end_time: TS = pa.Field(nullable=False, description="service end")
    end_time__unparseable: bool = _ok("end_time")
    county_code: str = pa.Field(nullable=True, description="county")
    amount: AMOUNT = pa.Field(nullable=False, description="settled amount, yuan")
    amount__unparseable: bool = _ok("amount")


MODELS: dict[str, type[pa.DataFrameModel]] = {
    "household_registration": HouseholdRegistration,
    "death_records": DeathRecords,
    "vehicle_registration": VehicleRegistration,
    "property_registration": PropertyRegistration,
    "payments": Payments,
    "public_servants": PublicServants,
    "training_claims": TrainingClaims,
    "service_orders": ServiceOrders,
}


# The quarantine reason of each companion flag ``<col>__<check>`` (the reason is "<text>: <col>");
# ``{kind}`` is the column's kind, ``{domain}`` its domain's label (extracts.DOMAINS).
REASONS = {
    "unparseable": "unparseable {kind}",
    "not_positive": "not above zero",
    "above_ceiling": "above the sanity ceiling",
    "too_precise": "more decimals than fen",
    "after_batch_date": "after the batch date",
    "too_early": "implausibly early",
    "wrong_kind": "not {domain}",
}
_DESCRIBE = {
    "not_positive": "the amount is zero or negative",
    "above_ceiling": "the amount is above its programme's sanity ceiling (extracts.Limits)",
    "too_precise": "the amount has more decimals than fen (it would have to be rounded)",
    "after_batch_date": "the date lies after the batch date by more than the margin (extracts.Limits)",
    "too_early": "the date lies before the earliest plausible one",
    "wrong_kind": "the value is not {domain}",
}


def reason_text(extract: str, column: str, check: str) -> str:
    """``REASONS`` filled in for one column of one extract."""
    c = EXTRACTS[extract].column(column)
    return REASONS[check].format(kind=c.kind, domain=DOMAINS[c.domain or "id"].label if check == "wrong_kind" else "")


@lru_cache(maxsize=None)
def schema_for(extract: str, only: tuple[str, ...] | None = None) -> pa.DataFrameSchema:
    """The extract's model plus one must-be-false companion per domain check the catalogue
    declares (``extracts.Column.checks``): the contract a row must meet to be loaded. ``only``
    (companion names) keeps just those companions: the ingest validates the companions that
    flag some row (a companion that is false everywhere passes by construction, and each
    checked column costs pandera a few milliseconds)."""
    extra = {}
    for c in EXTRACTS[extract].columns:
        for check in c.checks:
            if only is not None and f"{c.name}__{check}" not in only:
                continue
            label = DOMAINS[c.domain or "id"].label if check == "wrong_kind" else ""
            extra[f"{c.name}__{check}"] = pa.Column(
                bool, pa.Check.eq(False), nullable=False,
                description=f"{c.name}: {_DESCRIBE[check].format(domain=label)}")
    return MODELS[extract].to_schema().add_columns(extra)
