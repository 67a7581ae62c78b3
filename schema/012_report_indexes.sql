-- 012_report_indexes.sql - bounce_stats_daily for a range of days is read
-- through an index: its day is (bounced_at AT TIME ZONE 'UTC')::date, which
-- bounces_bounced_at_idx cannot serve, so "the last 30 days" read every
-- bounce row.  The expression index matches the view's expression, and a
-- condition on day reaches it through the view's GROUP BY.
CREATE INDEX bounces_day_idx ON bounces
    (((bounced_at AT TIME ZONE 'UTC')::date), recipient_domain);
