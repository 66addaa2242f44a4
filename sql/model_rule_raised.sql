-- model_rule_raised: the persons some rule already raised, whom the scorer does not report again.
-- Grain: id_number. A person is raised when a rule_hits row names them as its subject
-- (subject_type person) or as the person to visit (id_number, e.g. the payee of a household finding).
SELECT DISTINCT raised AS id_number
FROM (
    SELECT id_number AS raised FROM rule_hits
    UNION ALL
    SELECT subject_id AS raised FROM rule_hits WHERE subject_type = 'person'
)
WHERE raised IS NOT NULL
