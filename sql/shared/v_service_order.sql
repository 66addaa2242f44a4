-- Grain: one row per home-care service order, with the elder's registration, date of death and
-- age on the day the order starts.
CREATE OR REPLACE VIEW v_service_order AS
SELECT
    o.order_id, o.elder_id_number, o.worker_id, o.provider, o.service_type, o.start_time, o.end_time,
    o.county_code, o.amount, CAST(o.start_time AS DATE) AS start_day, strftime(o.start_time, '%Y-%m') AS period,
    date_diff('minute', o.start_time, o.end_time) AS minutes,
    r.name AS elder_name,
    -- the registration's township and village where it is in the order's county (as in v_payment)
    CASE WHEN r.county_code = o.county_code THEN r.township END AS reg_township,
    CASE WHEN r.county_code = o.county_code THEN r.village END AS reg_village,
    coalesce(r.birth_date, CASE WHEN o.elder_id_number_valid THEN id_birth_date(o.elder_id_number) END) AS birth_date,
    age_years(coalesce(r.birth_date, CASE WHEN o.elder_id_number_valid THEN id_birth_date(o.elder_id_number) END),
              CAST(o.start_time AS DATE)) AS age_at_start,
    r.death_date, r.death_source
FROM stg_service_orders o
LEFT JOIN v_person r ON r.id_number = o.elder_id_number
