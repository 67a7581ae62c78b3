-- 003_policy.sql - the suppression policy in full: per-reason overrides
-- from the config, operator unsuppress with an audit trail, the first-pass
-- mark of each mailbox, and one row-level rule (bounce_counting) that both
-- the suppressions view and the suppression_evidence view use.

ALTER TABLE mailboxes ADD COLUMN first_pass_completed_at timestamptz;
COMMENT ON COLUMN mailboxes.first_pass_completed_at IS
    'When bouncerd finished its first pass over the mailbox; NULL before. With first_pass: record_only, bounces recorded before that are stored but not counted.';

CREATE TABLE reason_overrides (
	reason text PRIMARY KEY,
	action text NOT NULL CHECK (action IN ('hard_after', 'never')),
	count integer CHECK (count >= 1),
	CHECK ((action = 'hard_after') = (count IS NOT NULL))
);
COMMENT ON TABLE reason_overrides IS
    'Per-reason exceptions to the suppression rules, copied from suppression.overrides in the config each time bouncerd starts or reloads.';
COMMENT ON COLUMN reason_overrides.reason IS 'A bounce reason (userunknown, mailboxfull, blocked, ...).';
COMMENT ON COLUMN reason_overrides.action IS
    'never: bounces with this reason never count; hard_after: they suppress like a hard bounce once the address has count of them (after its latest delivery report), and no longer count as ordinary soft bounces.';
COMMENT ON COLUMN reason_overrides.count IS 'For hard_after: how many bounces with this reason suppress.';

CREATE TABLE suppression_lifts (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	address text NOT NULL,
	note text NOT NULL CHECK (note <> ''),
	lifted_by text NOT NULL DEFAULT current_user,
	lifted_at timestamptz NOT NULL DEFAULT clock_timestamp(),
	was_suppressed_because text,
	was_reason text
);
COMMENT ON TABLE suppression_lifts IS
    'Audit trail of unsuppress(): who lifted which address from the suppression list, when and why. Only bounces dated after the latest lift count for the address.';
COMMENT ON COLUMN suppression_lifts.id IS 'Internal number of the lift.';
COMMENT ON COLUMN suppression_lifts.address IS 'The address lifted (lower-case).';
COMMENT ON COLUMN suppression_lifts.note IS 'The operator''s note (required).';
COMMENT ON COLUMN suppression_lifts.lifted_by IS 'Database user (or the name given to unsuppress()) that lifted it.';
COMMENT ON COLUMN suppression_lifts.lifted_at IS 'When it was lifted.';
COMMENT ON COLUMN suppression_lifts.was_suppressed_because IS 'suppressed_because of the address at that moment.';
COMMENT ON COLUMN suppression_lifts.was_reason IS 'reason of the address at that moment.';
CREATE INDEX suppression_lifts_address_idx ON suppression_lifts (address, lifted_at);

-- One row per bounce row with a recipient: whether and how it counts.
--   counted_as: hard | complaint | soft (within soft_window) | override
--   (a hard_after reason), or NULL with not_counted_because:
--   not_a_failure (autoreply, delivered, unknown), delayed, first_pass,
--   max_age (stored with counts = false), reason_never_counts,
--   before_unsuppress, before_delivery_report, outside_soft_window.
CREATE FUNCTION bounce_counting(up_to_id bigint DEFAULT NULL)
RETURNS TABLE (
	bounce_id bigint,
	address text,
	domain text,
	class text,
	reason text,
	bounced_at timestamptz,
	counted_as text,
	not_counted_because text
)
LANGUAGE sql STABLE AS $$
WITH r AS (
	SELECT b.id, b.recipient, b.recipient_domain, b.class, b.reason,
	    b.action, b.bounced_at, b.counts, b.not_counted_because,
	    max(b.bounced_at) FILTER (WHERE b.class = 'delivered')
	        OVER (PARTITION BY b.recipient) AS last_delivered_at,
	    (SELECT max(l.lifted_at) FROM suppression_lifts l
	        WHERE l.address = b.recipient) AS lifted_at,
	    o.action AS override
	FROM bounces b
	LEFT JOIN reason_overrides o ON o.reason = b.reason
	WHERE b.recipient IS NOT NULL
	    AND (up_to_id IS NULL OR b.id <= up_to_id)
), w AS (
	SELECT r.*,
	    CASE
	    WHEN r.class NOT IN ('hard', 'soft', 'complaint')
	        THEN 'not_a_failure'
	    WHEN coalesce(r.action, '') = 'delayed' THEN 'delayed'
	    WHEN NOT r.counts THEN coalesce(r.not_counted_because, 'not_counted')
	    WHEN r.override = 'never' THEN 'reason_never_counts'
	    WHEN r.bounced_at <= coalesce(r.lifted_at, '-infinity')
	        THEN 'before_unsuppress'
	    WHEN r.class = 'soft'
	        AND r.bounced_at <= coalesce(r.last_delivered_at, '-infinity')
	        THEN 'before_delivery_report'
	    WHEN r.class = 'soft' AND r.override IS NULL
	        AND r.bounced_at <= now() - (SELECT soft_window FROM settings
	            WHERE id)
	        THEN 'outside_soft_window'
	    END AS why_not
	FROM r
)
SELECT w.id, w.recipient, w.recipient_domain, w.class, w.reason,
    w.bounced_at,
    CASE WHEN w.why_not IS NOT NULL THEN NULL
        WHEN w.class = 'soft' AND w.override = 'hard_after' THEN 'override'
        ELSE w.class END,
    w.why_not
FROM w
$$;
COMMENT ON FUNCTION bounce_counting(bigint) IS
    'The suppression rules for each bounce row: counted_as (hard, complaint, soft, override) or not_counted_because. up_to_id limits the rows to bounces.id <= up_to_id.';

CREATE OR REPLACE FUNCTION suppression_status(up_to_id bigint DEFAULT NULL)
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
WITH g AS (
	SELECT c.address, min(c.domain) AS domain,
	    count(*) FILTER (WHERE c.counted_as = 'hard') AS hard_bounces,
	    count(*) FILTER (WHERE c.counted_as = 'complaint') AS complaints,
	    count(*) FILTER (WHERE c.counted_as = 'soft') AS soft,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'complaint'))[1] AS complaint_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'hard'))[1] AS hard_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'soft'))[1] AS soft_reason,
	    min(c.bounced_at) FILTER (WHERE c.counted_as IS NOT NULL)
	        AS first_bounced_at,
	    max(c.bounced_at) FILTER (WHERE c.counted_as IS NOT NULL)
	        AS last_bounced_at
	FROM bounce_counting(up_to_id) c
	GROUP BY c.address
), o AS (
	SELECT x.address,
	    (array_agg(x.reason ORDER BY x.last DESC, x.reason))[1]
	        AS override_reason
	FROM (
		SELECT c.address, c.reason, max(c.bounced_at) AS last
		FROM bounce_counting(up_to_id) c
		JOIN reason_overrides ro ON ro.reason = c.reason
		WHERE c.counted_as = 'override'
		GROUP BY c.address, c.reason, ro.count
		HAVING count(*) >= ro.count
	) x
	GROUP BY x.address
)
SELECT g.address, g.domain,
    g.complaints + g.hard_bounces > 0 OR o.override_reason IS NOT NULL
        OR g.soft >= cfg.soft_threshold,
    CASE WHEN g.complaints > 0 THEN 'complaint'
        WHEN g.hard_bounces > 0 THEN 'hard_bounce'
        WHEN o.override_reason IS NOT NULL THEN 'reason_override'
        WHEN g.soft >= cfg.soft_threshold THEN 'soft_bounces'
    END,
    CASE WHEN g.complaints > 0 THEN g.complaint_reason
        WHEN g.hard_bounces > 0 THEN g.hard_reason
        WHEN o.override_reason IS NOT NULL THEN o.override_reason
        WHEN g.soft >= cfg.soft_threshold THEN g.soft_reason
    END,
    CASE WHEN g.complaints > 0 THEN 'complaint'
        WHEN g.hard_bounces > 0 THEN 'hard'
        WHEN o.override_reason IS NOT NULL THEN 'soft'
        WHEN g.soft >= cfg.soft_threshold THEN 'soft'
    END,
    g.hard_bounces, g.complaints, g.soft,
    g.first_bounced_at, g.last_bounced_at
FROM g
LEFT JOIN o ON o.address = g.address
CROSS JOIN (SELECT soft_threshold FROM settings WHERE id) cfg
$$;

COMMENT ON VIEW suppressions IS
    'Addresses to stop mailing, with the rule that put them there (suppressed_because): complaint or hard_bounce at once; reason_override when an address has the configured number of bounces of a hard_after reason; soft_bounces at settings.soft_threshold soft bounces within settings.soft_window. See suppression_evidence for the rows behind an address.';
COMMENT ON COLUMN suppressions.suppressed_because IS
    'complaint, hard_bounce, reason_override or soft_bounces (the strongest that applies).';

CREATE VIEW suppression_evidence AS
SELECT c.address, c.bounced_at, c.class, c.reason, c.counted_as,
    c.not_counted_because, b.status, b.reply_code, b.action, b.diagnostic,
    b.remote_mta, b.original_message_id, b.campaign_id, b.recipient_source,
    m.uidl, mb.name AS mailbox, b.id AS bounce_id, b.message_id
FROM bounce_counting(NULL) c
JOIN bounces b ON b.id = c.bounce_id
JOIN messages m ON m.id = b.message_id
JOIN mailboxes mb ON mb.id = m.mailbox_id;
COMMENT ON VIEW suppression_evidence IS
    'Every bounce row of every address with how the suppression rules count it: query it for one address to see why it is (or is not) suppressed.';
COMMENT ON COLUMN suppression_evidence.address IS 'The recipient address (lower-case).';
COMMENT ON COLUMN suppression_evidence.bounced_at IS 'When it bounced.';
COMMENT ON COLUMN suppression_evidence.class IS 'hard, soft, complaint, autoreply, delivered or unknown.';
COMMENT ON COLUMN suppression_evidence.reason IS 'Why it bounced (Sisimai reason).';
COMMENT ON COLUMN suppression_evidence.counted_as IS
    'How the row counts towards suppression: hard, complaint, soft (within soft_window), override (a hard_after reason); NULL when it does not count.';
COMMENT ON COLUMN suppression_evidence.not_counted_because IS
    'Why the row does not count: not_a_failure, delayed, first_pass, max_age, reason_never_counts, before_unsuppress, before_delivery_report or outside_soft_window.';
COMMENT ON COLUMN suppression_evidence.status IS 'Enhanced status code, for example 5.1.1.';
COMMENT ON COLUMN suppression_evidence.reply_code IS 'SMTP reply code, for example 550.';
COMMENT ON COLUMN suppression_evidence.action IS 'Action field of the report.';
COMMENT ON COLUMN suppression_evidence.diagnostic IS 'The receiving server''s explanation.';
COMMENT ON COLUMN suppression_evidence.remote_mta IS 'The mail server that refused the email.';
COMMENT ON COLUMN suppression_evidence.original_message_id IS 'Message-ID of the email you sent.';
COMMENT ON COLUMN suppression_evidence.campaign_id IS 'Campaign id of the email you sent.';
COMMENT ON COLUMN suppression_evidence.recipient_source IS 'Where the address was found in the bounce.';
COMMENT ON COLUMN suppression_evidence.uidl IS 'POP3 id of the bounce email in its mailbox.';
COMMENT ON COLUMN suppression_evidence.mailbox IS 'Name of the mailbox the bounce came from.';
COMMENT ON COLUMN suppression_evidence.bounce_id IS 'bounces.id of the row.';
COMMENT ON COLUMN suppression_evidence.message_id IS 'messages.id of the bounce email (its raw bytes are in messages.raw).';

-- unsuppress('a@example.org', 'confirmed by phone') lifts an address from
-- the suppression list and records the lift in suppression_lifts; from
-- then on only bounces dated after the lift count for it.  Returns false
-- (and records nothing) when the address is not suppressed.
CREATE FUNCTION unsuppress(p_address text, p_note text,
    p_lifted_by text DEFAULT current_user)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	cur record;
BEGIN
	IF coalesce(p_note, '') = '' THEN
		RAISE EXCEPTION 'unsuppress needs a note saying why';
	END IF;
	SELECT s.suppressed_because, s.reason INTO cur
	FROM suppression_status(NULL) s
	WHERE s.address = lower(p_address) AND s.suppressed;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	INSERT INTO suppression_lifts (address, note, lifted_by,
	    was_suppressed_because, was_reason)
	VALUES (lower(p_address), p_note, p_lifted_by,
	    cur.suppressed_because, cur.reason);
	RETURN true;
END
$$;
COMMENT ON FUNCTION unsuppress(text, text, text) IS
    'Lifts an address from the suppression list with an operator note (kept in suppression_lifts); only bounces dated after the lift count from then on. Returns false when the address was not suppressed.';
