-- grain: one row per rule: the verifiers' conclusions on its warnings and the confirmed rate
-- (属实 and 已整改 count as confirmed; the rate is over the warnings concluded so far).
CREATE OR REPLACE VIEW supervisor_rule_performance AS
WITH latest AS (
    SELECT * FROM dispositions QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY recorded_at DESC, line DESC) = 1
), per_rule AS (
    SELECT unnest(string_split(w.rule_id, ',')) AS rule_id, w.category, w.warning_id, l.status AS concluded
    FROM warnings w LEFT JOIN latest l USING (warning_id)
)
SELECT rule_id, any_value(category) AS category, count(*) AS warnings,
       count(concluded) AS concluded,
       count(*) FILTER (WHERE concluded = 'confirmed') AS confirmed,
       count(*) FILTER (WHERE concluded = 'rectified') AS rectified,
       count(*) FILTER (WHERE concluded = 'cleared') AS cleared,
       round(count(*) FILTER (WHERE concluded IN ('confirmed', 'rectified')) / nullif(count(concluded), 0), 4)
           AS confirmed_rate
FROM per_rule
GROUP BY rule_id
ORDER BY rule_id
