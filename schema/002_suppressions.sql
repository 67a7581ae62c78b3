-- 002_suppressions.sql - the counting rules in one place
-- (suppression_status), the suppressions view built on it, the NOTIFY sent
-- when an address enters the list, and the daily per-domain statistics.
-- The rules read settings (soft_threshold, soft_window), which bouncerd
-- copies from its config at start.

-- The counting rules, one row per address seen in bounces:
--   * a hard bounce or a complaint suppresses at once;
--   * soft bounces suppress once soft_threshold of them fall within
--     soft_window before now (by bounce date);
--   * never counted: Action delayed, auto-replies, delivery reports,
--     unknown, and rows stored with counts = false (first pass, max age);
--   * a delivery report for the address clears the soft bounces before it.
-- up_to_id limits the rows to bounces.id <= up_to_id (NULL: all): the
-- NOTIFY trigger compares the state before and after a row.
CREATE FUNCTION suppression_status(up_to_id bigint DEFAULT NULL)
RETURNS TABLE (
	address text,
	domain text,
	suppressed boolean,
	suppressed_because text,
	reason text,
	class text,
	hard_bounces bigint,
	complaints bigint,
	recent_soft_bounces bigint,
	first_bounced_at timestamptz,
	last_bounced_at timestamptz
)
LANGUAGE sql STABLE AS $$
WITH cfg AS (
	SELECT soft_threshold, soft_window FROM settings WHERE id
), r AS (
	SELECT b.recipient, b.recipient_domain, b.class, b.reason, b.bounced_at,
	    b.counts AND coalesce(b.action, '') <> 'delayed' AS countable,
	    max(b.bounced_at) FILTER (WHERE b.class = 'delivered')
	        OVER (PARTITION BY b.recipient) AS last_delivered_at
	FROM bounces b
	WHERE b.recipient IS NOT NULL
	    AND (up_to_id IS NULL OR b.id <= up_to_id)
), c AS (
	SELECT r.recipient, r.recipient_domain, r.class, r.reason, r.bounced_at,
	    r.countable AND r.class IN ('hard', 'complaint') AS at_once,
	    r.countable AND r.class = 'soft'
	        AND r.bounced_at > now() - cfg.soft_window
	        AND r.bounced_at > coalesce(r.last_delivered_at, '-infinity')
	        AS soft,
	    cfg.soft_threshold
	FROM r CROSS JOIN cfg
), g AS (
	SELECT c.recipient, min(c.recipient_domain) AS recipient_domain,
	    count(*) FILTER (WHERE c.at_once AND c.class = 'hard') AS hard_bounces,
	    count(*) FILTER (WHERE c.at_once AND c.class = 'complaint') AS complaints,
	    count(*) FILTER (WHERE c.soft) AS recent_soft_bounces,
	    min(c.soft_threshold) AS soft_threshold,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.at_once AND c.class = 'complaint'))[1] AS complaint_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.at_once AND c.class = 'hard'))[1] AS hard_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.soft))[1] AS soft_reason,
	    min(c.bounced_at) FILTER (WHERE c.at_once OR c.soft) AS first_bounced_at,
	    max(c.bounced_at) FILTER (WHERE c.at_once OR c.soft) AS last_bounced_at
	FROM c
	GROUP BY c.recipient
)
SELECT g.recipient, g.recipient_domain,
    g.hard_bounces + g.complaints > 0
        OR g.recent_soft_bounces >= g.soft_threshold,
    CASE WHEN g.complaints > 0 THEN 'complaint'
        WHEN g.hard_bounces > 0 THEN 'hard_bounce'
        WHEN g.recent_soft_bounces >= g.soft_threshold THEN 'soft_bounces'
    END,
    CASE WHEN g.complaints > 0 THEN g.complaint_reason
        WHEN g.hard_bounces > 0 THEN g.hard_reason
        WHEN g.recent_soft_bounces >= g.soft_threshold THEN g.soft_reason
    END,
    CASE WHEN g.complaints > 0 THEN 'complaint'
        WHEN g.hard_bounces > 0 THEN 'hard'
        WHEN g.recent_soft_bounces >= g.soft_threshold THEN 'soft'
    END,
    g.hard_bounces, g.complaints, g.recent_soft_bounces,
    g.first_bounced_at, g.last_bounced_at
FROM g
$$;
COMMENT ON FUNCTION suppression_status(bigint) IS
    'The suppression rules: one row per address with its counts and whether it is suppressed. See the suppressions view.';

CREATE VIEW suppressions AS
SELECT address, domain, suppressed_because, reason, class, hard_bounces,
    complaints, recent_soft_bounces, first_bounced_at, last_bounced_at
FROM suppression_status(NULL)
WHERE suppressed;
COMMENT ON VIEW suppressions IS
    'Addresses to stop mailing: any hard bounce or complaint, or settings.soft_threshold soft bounces within settings.soft_window before now. Delayed reports, auto-replies, delivery reports and rows with counts = false never count; a delivery report clears the soft bounces before it.';
COMMENT ON COLUMN suppressions.address IS 'The address to stop mailing (lower-case).';
COMMENT ON COLUMN suppressions.domain IS 'Its domain.';
COMMENT ON COLUMN suppressions.suppressed_because IS 'complaint, hard_bounce or soft_bounces (the strongest that applies).';
COMMENT ON COLUMN suppressions.reason IS 'Reason of the latest bounce behind suppressed_because (userunknown, mailboxfull, ...).';
COMMENT ON COLUMN suppressions.class IS 'complaint, hard or soft: the class of the bounces behind suppressed_because.';
COMMENT ON COLUMN suppressions.hard_bounces IS 'Counted hard bounces of the address (all time).';
COMMENT ON COLUMN suppressions.complaints IS 'Counted complaints of the address (all time).';
COMMENT ON COLUMN suppressions.recent_soft_bounces IS 'Counted soft bounces within soft_window before now, after the latest delivery report.';
COMMENT ON COLUMN suppressions.first_bounced_at IS 'Date of the first counted bounce.';
COMMENT ON COLUMN suppressions.last_bounced_at IS 'Date of the latest counted bounce.';

-- NOTIFY bouncerd_suppression, payload JSON {"address","reason","class",
-- "suppressed_because"}, when a new bounce row puts its address on the
-- list (it was not suppressed by the rows before it).  Sent at COMMIT.
CREATE FUNCTION bounces_notify_suppression() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	now_s record;
	was boolean;
BEGIN
	IF NEW.recipient IS NULL OR NOT NEW.counts
	    OR NEW.class NOT IN ('hard', 'soft', 'complaint')
	    OR coalesce(NEW.action, '') = 'delayed' THEN
		RETURN NULL;
	END IF;
	SELECT s.suppressed, s.reason, s.class, s.suppressed_because
	INTO now_s
	FROM suppression_status(NEW.id) s WHERE s.address = NEW.recipient;
	IF NOT FOUND OR NOT now_s.suppressed THEN
		RETURN NULL;
	END IF;
	SELECT s.suppressed INTO was
	FROM suppression_status(NEW.id - 1) s WHERE s.address = NEW.recipient;
	IF coalesce(was, false) THEN
		RETURN NULL;
	END IF;
	PERFORM pg_notify('bouncerd_suppression', json_build_object(
	    'address', NEW.recipient, 'reason', now_s.reason,
	    'class', now_s.class,
	    'suppressed_because', now_s.suppressed_because)::text);
	RETURN NULL;
END
$$;
CREATE TRIGGER bounces_notify_suppression AFTER INSERT ON bounces
FOR EACH ROW EXECUTE FUNCTION bounces_notify_suppression();

CREATE VIEW bounce_stats_daily AS
SELECT (b.bounced_at AT TIME ZONE 'UTC')::date AS day,
    b.recipient_domain AS domain,
    count(*) AS records,
    count(DISTINCT b.recipient) AS addresses,
    count(*) FILTER (WHERE b.class = 'hard') AS hard_bounces,
    count(*) FILTER (WHERE b.class = 'soft'
        AND coalesce(b.action, '') <> 'delayed') AS soft_bounces,
    count(*) FILTER (WHERE coalesce(b.action, '') = 'delayed') AS delayed,
    count(*) FILTER (WHERE b.class = 'complaint') AS complaints,
    count(*) FILTER (WHERE b.class = 'autoreply') AS autoreplies,
    count(*) FILTER (WHERE b.class = 'delivered') AS delivered,
    count(*) FILTER (WHERE b.class = 'unknown') AS unknown,
    round(count(*) FILTER (WHERE b.class = 'hard')::numeric
        / nullif(count(*) FILTER (WHERE b.class IN ('hard', 'soft')
            AND coalesce(b.action, '') <> 'delayed'), 0), 4)
        AS hard_share_of_failures
FROM bounces b
GROUP BY 1, 2;
COMMENT ON VIEW bounce_stats_daily IS
    'Bounce records per day (UTC, by bounce date) and recipient domain, by class.';
COMMENT ON COLUMN bounce_stats_daily.day IS 'The day the bounces happened (UTC).';
COMMENT ON COLUMN bounce_stats_daily.domain IS 'Recipient domain.';
COMMENT ON COLUMN bounce_stats_daily.records IS 'All bounce records of that day and domain.';
COMMENT ON COLUMN bounce_stats_daily.addresses IS 'Distinct recipient addresses among them.';
COMMENT ON COLUMN bounce_stats_daily.hard_bounces IS 'Hard bounces (the address is bad).';
COMMENT ON COLUMN bounce_stats_daily.soft_bounces IS 'Soft bounces (temporary, or not the address''s fault), delays excluded.';
COMMENT ON COLUMN bounce_stats_daily.delayed IS 'Delay reports (Action: delayed): delivery is still being tried.';
COMMENT ON COLUMN bounce_stats_daily.complaints IS 'Spam complaints (ARF reports).';
COMMENT ON COLUMN bounce_stats_daily.autoreplies IS 'Auto-replies (out of office and similar).';
COMMENT ON COLUMN bounce_stats_daily.delivered IS 'Delivery success reports.';
COMMENT ON COLUMN bounce_stats_daily.unknown IS 'Records of no recognised class.';
COMMENT ON COLUMN bounce_stats_daily.hard_share_of_failures IS
    'hard_bounces / (hard_bounces + soft_bounces), 0 to 1; NULL when there were no failures. Divide hard_bounces by your own sent count for a rate per email sent.';
