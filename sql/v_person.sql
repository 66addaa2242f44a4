-- Grain: one row per registered person (stg_household_registration), with the date of death from
-- both sources (the earliest of the registration's status_date when 死亡 and death_records) and
-- the move-out date.
CREATE OR REPLACE VIEW v_person AS
WITH dr AS (
    SELECT id_number, min(death_date) AS death_date, arg_min(source, death_date) AS death_source
    FROM stg_death_records
    WHERE id_number IS NOT NULL AND death_date IS NOT NULL
    GROUP BY id_number
)
SELECT
    r.id_number, r.id_number_valid, r.name, r.sex, r.birth_date, r.household_id, r.relation_to_head,
    r.county_code, r.township, r.village, r.status, r.status_date,
    CASE WHEN r.status = '死亡' THEN r.status_date END AS reg_death_date,
    dr.death_date AS record_death_date,
    least(CASE WHEN r.status = '死亡' THEN r.status_date END, dr.death_date) AS death_date,
    CASE
        WHEN dr.death_date IS NOT NULL AND (r.status IS DISTINCT FROM '死亡' OR r.status_date IS NULL OR dr.death_date <= r.status_date)
            THEN '死亡人员信息·' || coalesce(dr.death_source, '未注明')
        WHEN r.status = '死亡' THEN '户籍注销'
    END AS death_source,
    CASE WHEN r.status = '迁出' THEN r.status_date END AS moved_out_date
FROM stg_household_registration r
LEFT JOIN dr ON dr.id_number = r.id_number
