"""POLICY.md's vocabularies, once: program codes and warning categories with their Chinese names
(the rule catalog validates against them, the lists print them, the generator pays them), the
severities, and OUTPUTS.md's verifier list: its columns and the conclusions a verifier writes.
SQL reads them from temp tables made from here (data_contracts.warehouse.register_policy)."""

PROGRAMS = {
    "DIBAO": "最低生活保障", "TEKUN": "特困人员救助供养", "GAOLING": "高龄津贴", "CANJI_SHENGHUO": "困难残疾人生活补贴",
    "CANJI_HULI": "重度残疾人护理补贴", "GUER": "孤儿基本生活费", "YANGLAO_FUWU": "居家养老服务补贴",
    "PEIXUN": "职业技能培训补贴",
}
CATEGORIES = {
    "deceased_paid": "死亡后仍发放", "residency_ineligible": "迁出后仍发放", "age_ineligible": "年龄不符",
    "duplicate_payment": "重复发放", "duplicate_identity": "一人多户(重复身份)", "identity_unverified": "身份无法核实",
    "shared_account": "多人共用账户", "asset_ineligible": "家庭财产超标", "public_servant": "财政供养人员享受",
    "cadre_relative": "村(社区)干部亲属享受", "training_claim_abuse": "培训补贴违规申领",
    "service_order_anomaly": "居家养老工单异常", "eligible_not_receiving": "应享未享",
    "amount_mismatch": "发放标准不符", "model_outlier": "模型异常(待核实)",
}
# Warning severities (POLICY.md), highest first: the Chinese label the lists print, the rank the
# lists sort by and a warning takes (the highest of the hits that raised it), and the floor of the
# risk score a warning of that severity gets (warnings_tonight.sql). Read in SQL from the temp table
# ``policy_severity`` (data_contracts.warehouse.register_policy).
SEVERITIES = {
    "high": {"label_zh": "高", "rank": 3, "score_floor": 0.8},
    "medium": {"label_zh": "中", "rank": 2, "score_floor": 0.5},
    "low": {"label_zh": "低", "rank": 1, "score_floor": 0.3},
}
SEVERITY_ZH = {k: v["label_zh"] for k, v in SEVERITIES.items()}
MODEL_SEVERITY = "low"  # the scorer's findings are leads for review, not proof (like cadre_relative)
# The verifier's list (OUTPUTS.md), in its order: canonical name -> Chinese header. The lists print
# these columns (casework/lists.py); feedback reads back the last two, which the verifier fills, and
# what the verifier saw (casework/feedback.py). `period` is first_period..last_period in one cell.
LIST_COLUMNS = {
    "warning_id": "预警编号", "category": "预警类型", "severity": "风险等级", "name": "姓名",
    "id_number": "公民身份号码", "program_code": "项目", "county_code": "区县", "township": "乡镇街道",
    "village": "村社区", "period": "涉及期间", "amount_at_risk": "涉及金额", "score": "风险分值",
    "evidence": "预警依据", "first_seen": "首次预警日期", "conclusion": "核查结论", "note": "核查说明",
}
# The verifier's conclusions (核查结论, OUTPUTS.md) and the warning status each gives.
CONCLUSIONS = {"属实": "confirmed", "不属实": "cleared", "已整改": "rectified"}
