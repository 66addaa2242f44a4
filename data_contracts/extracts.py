"""The extract catalogue: every extract of EXTRACTS.md, its columns, aliases, kinds and keys.

This is the single declarative description the ingest, the pandera models and the
warehouse DDL are derived from. Column kinds:

- ``id``: a resident identity number (normalised, gets a ``<col>_valid`` companion)
- ``text``: trimmed, full-width folded, empty string as NULL
- ``name``: text, plus minority-name separators ``•`` / ``.`` / ``・`` folded to ``·``
- ``sex``: ``男``/``女``; ``1``/``2`` mapped to them
- ``date``, ``datetime``, ``period`` (text ``YYYY-MM``), ``amount`` (DECIMAL(18,2))

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

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id, text, name, sex, date, datetime, period, amount
    aliases: tuple[str, ...] = ()
    nullable: bool = False  # may be empty
    optional: bool = False  # may be absent from the header
    description: str = ""


@dataclass(frozen=True)
class Extract:
    name: str
    title: str
    snapshot: bool  # True: tonight's delivery replaces; False: upsert by key
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    required: bool = False  # must be delivered every night

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


C = Column

EXTRACTS: dict[str, Extract] = {e.name: e for e in [
    Extract("household_registration", "户籍人口信息", snapshot=True, key=("id_number",), required=True, columns=(
        C("id_number", "id", ("公民身份号码", "身份证号", "身份证号码"), description="resident identity number (key)"),
        C("name", "name", ("姓名",), description="name; minority separators folded to ·"),
        C("sex", "sex", ("性别",), description="男/女 (1/2 mapped)"),
        C("birth_date", "date", ("出生日期",), description="date of birth"),
        C("household_id", "text", ("户号",), description="household number; members share it"),
        C("relation_to_head", "text", ("与户主关系",), description="relation to the head of household"),
        C("county_code", "text", ("行政区划代码", "区县代码"), description="6-digit county code (GB/T 2260)"),
        C("township", "text", ("乡镇街道",), description="township or street"),
        C("village", "text", ("村社区", "村(居)委会"), description="village or community"),
        C("status", "text", ("户口状态", "人员状态"), description="正常, 死亡 or 迁出"),
        C("status_date", "date", ("状态变更日期",), nullable=True, description="date of death or move-out"),
    )),
    Extract("death_records", "死亡人员信息", snapshot=False, key=("id_number",), columns=(
        C("id_number", "id", ("公民身份号码", "身份证号"), description="identity number of the deceased (key)"),
        C("name", "name", ("姓名",), description="name"),
        C("death_date", "date", ("死亡日期",), description="date of death"),
        C("source", "text", ("信息来源",), description="火化, 医院 or 公安"),
    )),
    Extract("vehicle_registration", "机动车登记信息", snapshot=True, key=("plate_number",), columns=(
        C("plate_number", "text", ("号牌号码",), description="plate number (key)"),
        C("owner_id_number", "id", ("所有人身份号码", "机动车所有人证件号码"), description="owner's identity number"),
        C("owner_name", "name", ("所有人姓名", "机动车所有人"), description="owner's name"),
        C("vehicle_type", "text", ("车辆类型",), description="vehicle type (小型轿车, ...)"),
        C("registration_date", "date", ("初次登记日期",), description="first registration date"),
        C("status", "text", ("机动车状态",), description="正常, 注销, 报废, 被盗抢"),
        C("assessed_value", "amount", ("车辆价值", "购置价格"), nullable=True, description="value in yuan"),
    )),
    Extract("property_registration", "不动产登记信息", snapshot=True, key=("certificate_number", "owner_id_number"), columns=(
        C("certificate_number", "text", ("不动产权证号", "不动产权证书号"),
          description="certificate number; co-owners repeat it (key with owner_id_number)"),
        C("owner_id_number", "id", ("权利人证件号", "权利人证件号码"), description="owner's identity number"),
        C("owner_name", "name", ("权利人", "权利人名称"), description="owner's name"),
        C("usage", "text", ("用途",), description="住宅, 商业, 办公, 工业, 车位, 其他"),
        C("area_m2", "amount", ("建筑面积",), description="floor area in square metres"),
        C("county_code", "text", ("坐落区县代码",), description="county where the property lies"),
        C("registration_date", "date", ("登记日期",), description="registration date"),
        C("status", "text", ("权属状态",), description="现势 (current) or 注销 (cancelled)"),
    )),
    Extract("payments", "资金发放明细", snapshot=False, key=("payment_id",), required=True, columns=(
        C("payment_id", "text", ("发放流水号",), description="payment serial number (key)"),
        C("program_code", "text", ("项目代码",), description="benefit programme (POLICY.md)"),
        C("program_name", "text", ("项目名称",), nullable=True, optional=True, description="programme name"),
        C("id_number", "id", ("领取人身份号码", "身份证号"), nullable=True,
          description="payee's identity number; invalid/unknown/empty is a finding, loaded"),
        C("name", "name", ("领取人姓名", "姓名"), description="payee's name"),
        C("household_id", "text", ("户号",), nullable=True, description="household (household programmes)"),
        C("bank_account", "text", ("银行账号", "社保卡号"), description="bank account or social-security card"),
        C("amount", "amount", ("发放金额",), description="amount paid, yuan"),
        C("period", "period", ("所属期", "发放月份"), description="month the money is for, YYYY-MM"),
        C("pay_date", "date", ("发放日期",), description="date paid"),
        C("county_code", "text", ("发放区县代码", "区县代码"), description="paying county"),
        C("township", "text", ("乡镇街道",), description="township"),
        C("village", "text", ("村社区",), description="village or community"),
        C("approved_by", "id", ("审核人身份号码",), nullable=True, description="approving official's identity number"),
    )),
    Extract("public_servants", "财政供养人员及村(社区)两委成员", snapshot=True, key=("id_number",), columns=(
        C("id_number", "id", ("公民身份号码", "身份证号"), description="identity number (key)"),
        C("name", "name", ("姓名",), description="name"),
        C("employer", "text", ("工作单位",), description="employer"),
        C("role", "text", ("人员类别",), description="公务员, 事业单位, 国有企业, 村两委, 社区两委"),
        C("county_code", "text", ("区县代码",), description="county"),
        C("township", "text", ("乡镇街道",), description="township"),
        C("village", "text", ("村社区",), description="village or community"),
        C("start_date", "date", ("任职开始日期",), description="start of post"),
        C("end_date", "date", ("任职结束日期",), nullable=True, description="end of post; NULL = still in post"),
    )),
    Extract("training_claims", "职业技能培训补贴申领", snapshot=False, key=("claim_id",), columns=(
        C("claim_id", "text", ("申领编号",), description="claim number (key)"),
        C("id_number", "id", ("公民身份号码", "身份证号"), description="claimant's identity number"),
        C("name", "name", ("姓名",), description="claimant's name"),
        C("certificate_number", "text", ("证书编号",), description="skill certificate number"),
        C("occupation", "text", ("职业(工种)", "职业工种"), description="occupation"),
        C("level", "text", ("等级",), description="certificate level"),
        C("training_org", "text", ("培训机构",), description="training organisation"),
        C("county_code", "text", ("申领地区县代码", "区县代码"), description="county of the claim"),
        C("claim_date", "date", ("申领日期",), description="claim date"),
        C("amount", "amount", ("补贴金额",), description="subsidy, yuan"),
    )),
    Extract("service_orders", "居家养老服务工单", snapshot=False, key=("order_id",), columns=(
        C("order_id", "text", ("工单编号",), description="work order number (key)"),
        C("elder_id_number", "id", ("服务对象身份号码",), description="the elder's identity number"),
        C("worker_id", "text", ("服务人员编号",), description="care worker number"),
        C("provider", "text", ("服务机构",), description="service provider"),
        C("service_type", "text", ("服务项目",), description="助餐, 助洁, 助浴, 助医, 陪护"),
        C("start_time", "datetime", ("服务开始时间",), description="service start"),
        C("end_time", "datetime", ("服务结束时间",), description="service end"),
        C("county_code", "text", ("区县代码",), description="county"),
        C("amount", "amount", ("结算金额",), description="settled amount, yuan"),
    )),
]}
