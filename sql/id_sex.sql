-- Sex written in an 18-digit identity number: odd sequence = 男, even = 女.
CREATE OR REPLACE MACRO id_sex(id) AS (
    CASE WHEN regexp_full_match(coalesce(id, ''), '\d{17}[\dX]')
         THEN CASE WHEN CAST(substr(id, 17, 1) AS INTEGER) % 2 = 1 THEN '男' ELSE '女' END END
)
