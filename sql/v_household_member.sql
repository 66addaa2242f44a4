-- Grain: one row per registered person with a household: the household of a person is everyone
-- sharing their household_id in the registration (POLICY.md).
CREATE OR REPLACE VIEW v_household_member AS
SELECT household_id, id_number AS member_id, name AS member_name, relation_to_head, status AS member_status
FROM stg_household_registration
WHERE household_id IS NOT NULL AND id_number IS NOT NULL
