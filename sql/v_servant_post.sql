-- Grain: one row per post in public_servants, with the holder's registered household.
CREATE OR REPLACE VIEW v_servant_post AS
SELECT s.id_number, s.name, s.employer, s.role, s.county_code, s.township, s.village,
       s.start_date, s.end_date, m.household_id, m.relation_to_head
FROM stg_public_servants s
LEFT JOIN v_household_member m ON m.member_id = s.id_number
