-- Grain: one row per vehicle owned by a registered person, with the owner's household.
CREATE OR REPLACE VIEW v_household_vehicle AS
SELECT m.household_id, m.member_id, m.member_name, m.relation_to_head,
       v.plate_number, v.vehicle_type, v.status, v.registration_date, v.assessed_value
FROM stg_vehicle_registration v
JOIN v_household_member m ON m.member_id = v.owner_id_number
