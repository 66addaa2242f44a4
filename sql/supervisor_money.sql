-- grain: one row per category: money at risk on live warnings, money the verifiers report
-- recovered, and money back-paid to eligible persons who were not receiving (应享未享).
CREATE OR REPLACE VIEW supervisor_money AS
WITH latest AS (
    SELECT * FROM dispositions QUALIFY row_number() OVER (PARTITION BY warning_id ORDER BY recorded_at DESC, line DESC) = 1
)
SELECT w.category,
       sum(w.amount_at_risk) FILTER (WHERE w.status IN ('new', 'open', 'confirmed')) AS amount_at_risk,
       coalesce(sum(l.amount_reported) FILTER (WHERE w.category <> 'eligible_not_receiving'), 0) AS amount_recovered,
       coalesce(sum(l.amount_reported) FILTER (WHERE w.category = 'eligible_not_receiving'), 0) AS amount_back_paid
FROM warnings w LEFT JOIN latest l USING (warning_id)
GROUP BY w.category
ORDER BY w.category
