-- Chinese name of a program code (POLICY.md), for evidence texts.
CREATE OR REPLACE MACRO program_name(code) AS (
    CASE code
        WHEN 'DIBAO' THEN '最低生活保障'
        WHEN 'TEKUN' THEN '特困人员救助供养'
        WHEN 'GAOLING' THEN '高龄津贴'
        WHEN 'CANJI_SHENGHUO' THEN '困难残疾人生活补贴'
        WHEN 'CANJI_HULI' THEN '重度残疾人护理补贴'
        WHEN 'GUER' THEN '孤儿基本生活费'
        WHEN 'YANGLAO_FUWU' THEN '居家养老服务补贴'
        WHEN 'PEIXUN' THEN '职业技能培训补贴'
        ELSE code
    END
)
