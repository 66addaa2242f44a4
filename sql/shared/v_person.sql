-- Grain: one row per person known to the registration or to the death records, with the date of
-- death from both sources (the earliest of the registration's status_date when 死亡 and
-- death_records) and the move-out date. `registered` tells the registration's people from those
-- only a death record knows (a payee dropped from the registration can still be dead).
CREATE OR REPLACE VIEW v_person AS
WITH dr AS (
    SELECT id_number, min(death_date) AS death_date, arg_min(source, (death_date, source)) AS death_source
    FROM stg_death_records
    WHERE id_number IS NOT NULL AND death_date IS NOT NULL
    GROUP BY id_number
)
SELECT
    coalesce(r.id_number, dr.id_number) AS id_number, r.id_number IS NOT NULL AS registered,
    r.id_number_valid, r.name, r.sex, r.birth_date, r.household_id, r.relation_to_head,
    r.county_code, r.township, r.village, r.status, r.status_date,
    least(CASE WHEN r.status = '死亡' THEN r.status_date END, dr.death_date) AS death_date,
    CASE
        WHEN dr.death_date IS NOT NULL AND (r.status IS DISTINCT FROM '死亡' OR r.status_date IS NULL OR dr.death_date <= r.status_date)
            THEN '死亡人员信息·' || coalesce(dr.death_source, '未注明')
        WHEN r.status = '死亡' THEN '户籍注销'
    END AS death_source,
    CASE WHEN r.status = '迁出' THEN r.status_date END AS moved_out_date
FROM stg_household_registration r
FULL OUTER JOIN dr ON dr.id_number = r.id_number
