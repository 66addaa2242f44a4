"""The extract catalogue: every extract of EXTRACTS.md, its columns, aliases, kinds and keys.

This is the single declarative description the ingest, the pandera models and the
warehouse DDL are derived from. Column kinds:

- ``id``: a resident identity number (normalised, gets a ``<col>_valid`` companion)
- ``text``: trimmed, full-width folded, empty string as NULL
- ``name``: text, plus minority-name separators ``•`` / ``.`` / ``・`` folded to ``·``
- ``sex``: ``男``/``女``; ``1``/``2`` mapped to them
- ``date``, ``datetime``, ``period`` (text ``YYYY-MM``), ``amount`` (DECIMAL(18,2))

:data:`KINDS` gives each kind's types once: the staging column's DuckDB type and the normalised
polars type. From the catalogue are derived: the header mapping (``landing.alias_map``), the
pandera schema of a normalised row (``schemas.schema_for``), the ``raw_<extract>`` and
``stg_<extract>`` tables (``load.ddl``) and the normaliser of each column (``normalise``).

Presence in the header (decision, see DEVELOPERS.md): every listed column is required in
the header except those marked ``optional`` (only ``payments.program_name``); a file without
one is refused. Columns marked ``nullable`` may be empty.

Row-level (EXTRACTS.md: quarantined only when it "cannot be interpreted at all"): a row is
quarantined when its key is empty, when a date, datetime, period or amount holds a value that
parses as nothing, or when a date/datetime/period/amount not marked ``nullable`` is empty
("required value empty"). Empty *text* and *ID* values are loaded as NULL (an ID column then
has ``<col>_valid = false``): an empty township, payee ID or name is something the rules may
flag, not a reason to drop the record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import polars as pl


@dataclass(frozen=True)
class Kind:
    """What a kind of column becomes once normalised."""
    sql: str  # its type in stg_<extract> (raw_<extract> holds every column as VARCHAR)
    dtype: pl.DataType  # its polars type after normalisation (the pandera schema's dtype)
    parsed: bool = False  # read by a parser: a value may be delivered and parse as nothing
    pattern: str | None = None  # the shape every normalised value has (checked by the schema)


KINDS: dict[str, Kind] = {
    "id": Kind("VARCHAR", pl.String()),
    "text": Kind("VARCHAR", pl.String()),
    "name": Kind("VARCHAR", pl.String()),
    "sex": Kind("VARCHAR", pl.String()),
    "date": Kind("DATE", pl.Date(), parsed=True),
    "datetime": Kind("TIMESTAMP", pl.Datetime("us"), parsed=True),
    "period": Kind("VARCHAR", pl.String(), parsed=True, pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    "amount": Kind("DECIMAL(18,2)", pl.Decimal(18, 2), parsed=True),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id, text, name, sex, date, datetime, period, amount
    aliases: tuple[str, ...] = ()
    nullable: bool = False  # may be empty
    optional: bool = False  # may be absent from the header
    description: str = ""
    domain: str | None = None  # a key of DOMAINS (ID columns: "id")
    money: bool = False  # amount paid: positive, at most the ceiling, fen precision (never rounded)
    positive: bool = False  # amount that must be above zero (rounded to 2 decimals)
    past: bool = False  # date/datetime/period that cannot lie (much) after the batch date
    earliest: str | None = None  # ISO date (period: YYYY-MM) before which a value is absurd

    @property
    def type(self) -> Kind:
        return KINDS[self.kind]

    @property
    def checks(self) -> tuple[str, ...]:
        """The domain checks of this column, as the suffixes of its companion flags."""
        out = []
        if self.money or self.positive:
            out.append("not_positive")
        if self.money:
            out += ["above_ceiling", "too_precise"]
        if self.past:
            out.append("after_batch_date")
        if self.earliest:
            out.append("too_early")
        if self.domain or self.kind == "id":
            out.append("wrong_kind")
        return tuple(out)


@dataclass(frozen=True)
class Domain:
    """What a column holds: a value for which ``pattern`` matches (or, with ``forbid``, does
    not) is of the wrong kind. ``label`` names the kind in the quarantine reason."""
    label: str
    pattern: str
    forbid: bool = False


CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
DOMAINS: dict[str, Domain] = {
    # ID numbers may be invalid (a finding), but never Chinese text: that is a shifted column
    "id": Domain("an ID number", f"[{CJK}]", forbid=True),
    "county_code": Domain("a 6-digit county code", r"^[0-9]{6}$"),
    "program_code": Domain("a programme code", r"^[A-Za-z][A-Za-z0-9_]*$"),
    # township-level and village-level names end in the kind of division they are
    "township": Domain("a township or street", "(街道|镇|乡|苏木|办事处|农场|林场|牧场|开发区|园区|新区|管委会|管理委员会|地区)$"),
    "village": Domain("a village or community", "(村|社区|居委会|村委会|居民委员会|村民委员会|嘎查|组|队|场|小区|区)$"),
    # names and Chinese vocabulary values: never only digits and date or amount punctuation
    "words": Domain("text (a date or a number)", r"^[0-9\s,.:/年月日+-]+$", forbid=True),
    # the closed vocabularies of EXTRACTS.md the rules test by equality: another word (注销 for a
    # cancelled hukou, 迁往外省) would silently take a person out of every death or move rule, or a
    # car or a home out of the asset rules; it is quarantined, the word and the line named
    "hukou_status": Domain("正常, 死亡 or 迁出", r"^(正常|死亡|迁出)$"),
    "vehicle_status": Domain("正常, 注销, 报废 or 被盗抢", r"^(正常|注销|报废|被盗抢)$"),
    "property_status": Domain("现势 or 注销", r"^(现势|注销)$"),
}


@dataclass(frozen=True)
class Limits:
    """The configurable bounds of the domain checks (``ingest(..., limits=Limits(...))``)."""
    # sanity ceiling per programme code, yuan; payments use their row's program_code,
    # training_claims PEIXUN and service_orders YANGLAO_FUWU (POLICY.md)
    ceilings: dict[str, Decimal] = field(default_factory=lambda: {
        "DIBAO": Decimal(500_000), "TEKUN": Decimal(500_000), "GAOLING": Decimal(100_000),
        "CANJI_SHENGHUO": Decimal(200_000), "CANJI_HULI": Decimal(200_000), "GUER": Decimal(200_000),
        "YANGLAO_FUWU": Decimal(100_000), "PEIXUN": Decimal(100_000)})
    default_ceiling: Decimal = Decimal(1_000_000)  # a programme code not listed
    future_days: int = 3  # a past-only date may be this many days after the batch date (clocks, time zones)
    period_months_ahead: int = 1  # a period may be this many months after the batch date's month

    def ceiling(self, program: str) -> Decimal:
        return self.ceilings.get(program, self.default_ceiling)


# the programme whose money an extract's ``money`` column holds, when not in a column of the row
PROGRAM_OF = {"training_claims": "PEIXUN", "service_orders": "YANGLAO_FUWU"}


@dataclass(frozen=True)
class Extract:
    name: str
    title: str
    snapshot: bool  # True: tonight's delivery replaces; False: upsert by key
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required: bool = False  # must be delivered every night
    # a key in one file with rows of different contents: every row is quarantined (nobody can tell
    # which is right), unless the extract names a date column whose earliest row is kept (a death
    # certified twice, by the crematorium and the hospital: the earliest date is the death's)
    earliest_on_repeat: str | None = None

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def id_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.kind == "id"]

    def may_be_null(self, c: Column) -> bool:
        """May the normalised value be null and the row still load? Not for a key, nor for a value
        a parser reads (date, datetime, period, amount) unless the column is ``nullable``: text
        and ID values may be empty (module docstring)."""
        return c.name not in self.key and (c.nullable or not c.type.parsed)

    @property
    def staging_columns(self) -> list[tuple[str, str]]:
        """(column, DuckDB type) of ``stg_<extract>`` before lineage: each column as its kind says,
        an ID column followed by its ``<col>_valid`` flag."""
        out = []
        for c in self.columns:
            out.append((c.name, c.type.sql))
            if c.kind == "id":
                out.append((f"{c.name}_valid", "BOOLEAN"))
        return out


C = Column

EXTRACTS: dict[str, Extract] = {e.name: e for e in [
    Extract("household_registration", "户籍人口信息", snapshot=True, key=("id_number",), required=True, columns=(
        C("id_number", "id", ("公民身份号码", "身份证号", "身份证号码"), description="resident identity number (key)"),
        C("name", "name", ("姓名",), description="name; minority separators folded to ·", domain="words"),
        C("sex", "sex", ("性别",), description="男/女 (1/2 mapped)"),
        C("birth_date", "date", ("出生日期",), description="date of birth", past=True, earliest="1880-01-01"),
        C("household_id", "text", ("户号",), description="household number; members share it"),
        C("relation_to_head", "text", ("与户主关系",), description="relation to the head of household", domain="words"),
        C("county_code", "text", ("行政区划代码", "区县代码"), description="6-digit county code (GB/T 2260)", domain="county_code"),
        C("township", "text", ("乡镇街道",), description="township or street", domain="township"),
        C("village", "text", ("村社区", "村(居)委会"), description="village or community", domain="village"),
        C("status", "text", ("户口状态", "人员状态"), description="正常, 死亡 or 迁出", domain="hukou_status"),
        C("status_date", "date", ("状态变更日期",), nullable=True, description="date of death or move-out", past=True, earliest="1950-01-01"),
    )),
    Extract("death_records", "死亡人员信息", snapshot=False, key=("id_number",), columns=(
        C("id_number", "id", ("公民身份号码", "身份证号"), description="identity number of the deceased (key)"),
        C("name", "name", ("姓名",), description="name", domain="words"),
        C("death_date", "date", ("死亡日期",), description="date of death", past=True, earliest="1950-01-01"),
        C("source", "text", ("信息来源",), description="火化, 医院 or 公安", domain="words"),
    ), earliest_on_repeat="death_date"),
    Extract("vehicle_registration", "机动车登记信息", snapshot=True, key=("plate_number",), columns=(
        C("plate_number", "text", ("号牌号码",), description="plate number (key)"),
        C("owner_id_number", "id", ("所有人身份号码", "机动车所有人证件号码"), description="owner's identity number"),
        C("owner_name", "name", ("所有人姓名", "机动车所有人"), description="owner's name", domain="words"),
        C("vehicle_type", "text", ("车辆类型",), description="vehicle type (小型轿车, ...)", domain="words"),
        C("registration_date", "date", ("初次登记日期",), description="first registration date", past=True, earliest="1950-01-01"),
        C("status", "text", ("机动车状态",), description="正常, 注销, 报废, 被盗抢", domain="vehicle_status"),
        C("assessed_value", "amount", ("车辆价值", "购置价格"), nullable=True, description="value in yuan", positive=True),
    )),
    Extract("property_registration", "不动产登记信息", snapshot=True, key=("certificate_number", "owner_id_number"), columns=(
        C("certificate_number", "text", ("不动产权证号", "不动产权证书号"),
          description="certificate number; co-owners repeat it (key with owner_id_number)"),
        C("owner_id_number", "id", ("权利人证件号", "权利人证件号码"), description="owner's identity number"),
        C("owner_name", "name", ("权利人", "权利人名称"), description="owner's name", domain="words"),
        C("usage", "text", ("用途",), description="住宅, 商业, 办公, 工业, 车位, 其他", domain="words"),
        C("area_m2", "amount", ("建筑面积",), description="floor area in square metres", positive=True),
        C("county_code", "text", ("坐落区县代码",), description="county where the property lies", domain="county_code"),
        C("registration_date", "date", ("登记日期",), description="registration date", past=True, earliest="1950-01-01"),
        C("status", "text", ("权属状态",), description="现势 (current) or 注销 (cancelled)", domain="property_status"),
    )),
    Extract("payments", "资金发放明细", snapshot=False, key=("payment_id",), required=True, columns=(
        C("payment_id", "text", ("发放流水号",), description="payment serial number (key)"),
        C("program_code", "text", ("项目代码",), description="benefit programme (POLICY.md)", domain="program_code"),
        C("program_name", "text", ("项目名称",), nullable=True, optional=True, description="programme name"),
        C("id_number", "id", ("领取人身份号码", "身份证号"), nullable=True,
          description="payee's identity number; invalid/unknown/empty is a finding, loaded"),
        C("name", "name", ("领取人姓名", "姓名"), description="payee's name", domain="words"),
        C("household_id", "text", ("户号",), nullable=True, description="household (household programmes)"),
        C("bank_account", "text", ("银行账号", "社保卡号"), description="bank account or social-security card"),
        C("amount", "amount", ("发放金额",), description="amount paid, yuan", money=True),
        C("period", "period", ("所属期", "发放月份"), description="month the money is for, YYYY-MM", past=True, earliest="2000-01"),
        C("pay_date", "date", ("发放日期",), description="date paid", past=True, earliest="2000-01-01"),
        C("county_code", "text", ("发放区县代码", "区县代码"), description="paying county", domain="county_code"),
        C("township", "text", ("乡镇街道",), description="township", domain="township"),
        C("village", "text", ("村社区",), description="village or community", domain="village"),
        C("approved_by", "id", ("审核人身份号码",), nullable=True, description="approving official's identity number"),
    )),
    Extract("public_servants", "财政供养人员及村(社区)两委成员", snapshot=True, key=("id_number",), columns=(
        C("id_number", "id", ("公民身份号码", "身份证号"), description="identity number (key)"),
        C("name", "name", ("姓名",), description="name", domain="words"),
        C("employer", "text", ("工作单位",), description="employer"),
        C("role", "text", ("人员类别",), description="公务员, 事业单位, 国有企业, 村两委, 社区两委", domain="words"),
        C("county_code", "text", ("区县代码",), description="county", domain="county_code"),
        C("township", "text", ("乡镇街道",), description="township", domain="township"),
        C("village", "text", ("村社区",), description="village or community", domain="village"),
        C("start_date", "date", ("任职开始日期",), description="start of post", earliest="1950-01-01"),
        C("end_date", "date", ("任职结束日期",), nullable=True, description="end of post; NULL = still in post"),
    )),
    Extract("training_claims", "职业技能培训补贴申领", snapshot=False, key=("claim_id",), columns=(
        C("claim_id", "text", ("申领编号",), description="claim number (key)"),
        C("id_number", "id", ("公民身份号码", "身份证号"), description="claimant's identity number"),
        C("name", "name", ("姓名",), description="claimant's name", domain="words"),
        C("certificate_number", "text", ("证书编号",), description="skill certificate number"),
        C("occupation", "text", ("职业(工种)", "职业工种"), description="occupation"),
        C("level", "text", ("等级",), description="certificate level"),
        C("training_org", "text", ("培训机构",), description="training organisation"),
        C("county_code", "text", ("申领地区县代码", "区县代码"), description="county of the claim", domain="county_code"),
        C("claim_date", "date", ("申领日期",), description="claim date", past=True, earliest="2000-01-01"),
        C("amount", "amount", ("补贴金额",), description="subsidy, yuan", money=True),
    )),
    Extract("service_orders", "居家养老服务工单", snapshot=False, key=("order_id",), columns=(
        C("order_id", "text", ("工单编号",), description="work order number (key)"),
        C("elder_id_number", "id", ("服务对象身份号码",), description="the elder's identity number"),
        C("worker_id", "text", ("服务人员编号",), description="care worker number"),
        C("provider", "text", ("服务机构",), description="service provider"),
        C("service_type", "text", ("服务项目",), description="助餐, 助洁, 助浴, 助医, 陪护", domain="words"),
        C("start_time", "datetime", ("服务开始时间",), description="service start", past=True, earliest="2000-01-01"),
        C("end_time", "datetime", ("服务结束时间",), description="service end", earliest="2000-01-01"),
        C("county_code", "text", ("区县代码",), description="county", domain="county_code"),
        C("amount", "amount", ("结算金额",), description="settled amount, yuan", money=True),
    )),
]}
