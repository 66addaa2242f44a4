-- Grain: one row per (property certificate, owner) owned by a registered person, with the
-- owner's household; co-owners repeat the certificate.
CREATE OR REPLACE VIEW v_household_property AS
SELECT m.household_id, m.member_id, m.member_name, m.relation_to_head,
       pr.certificate_number, pr.usage, pr.area_m2, pr.county_code, pr.registration_date, pr.status
FROM stg_property_registration pr
JOIN v_household_member m ON m.member_id = pr.owner_id_number
