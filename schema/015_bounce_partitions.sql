-- 015_bounce_partitions.sql - bounce history partitioned by month, so that
-- retention drops a month of rows instead of deleting them one by one,
-- and a summary of the history it drops, so that the suppression list
-- stays what it was.
--   * bounces is partitioned by bounced_at (whole UTC months, one table
--     bounces_YYYY_MM each) with a default partition, bounces_default,
--     for rows outside them (reports dated years back).  The rows, their
--     ids and every index are as before; the primary key becomes
--     (id, bounced_at), as a partitioned table requires.  The migration
--     copies the rows (it takes a while on a large table).
--   * bounce_partitions_ensure() creates the months to come (bouncerd
--     calls it after each pass); a month whose rows went to the default
--     partition meanwhile gets them moved into its own table.
--   * What can still count in rows older than the month of the soft
--     window's start (suppression_feed.folded_before) is summed into
--     suppression_carried: per address, month, class and reason, how many
--     and their first and last date.  The rules read those groups as rows
--     and the bounce rows only from folded_before on (the older months'
--     partitions are pruned), so recording an address's bounce reads the
--     last month or two of its history, not all of it: the cost of
--     recording stays what it is on a young database.
--     suppression_fold_history(), called after each pass, moves the
--     boundary a month on when it is due; a bounce dated before it is
--     folded as it is recorded.
--   * bounce_history_expire(keep) drops the months entirely older than
--     keep (never less than soft_window, and all folded) and deletes the
--     default partition's rows older than that.  Their groups stay, so an
--     address keeps its state and is evaluated alike later.
--     suppression_state, suppression_changes and suppression_lifts are
--     never expired.
--   * ledger_expire(keep) removes ledger rows of recorded bounces that
--     were deleted from the server more than keep ago (messages_gone_idx).
--   * bounces.message_id no longer references messages: a ledger row may
--     be removed by retention while its bounce rows are kept.
--     suppression_evidence joins the ledger with LEFT JOIN.

CREATE TABLE suppression_carried (
	address text NOT NULL,
	class text NOT NULL,
	reason text NOT NULL,
	domain text,
	n bigint NOT NULL,
	first_at timestamptz NOT NULL,
	last_at timestamptz NOT NULL,
	month date NOT NULL,
	-- the rules read an address's groups from the index alone
	PRIMARY KEY (address, month, class, reason)
	    INCLUDE (domain, n, first_at, last_at)
);
COMMENT ON TABLE suppression_carried IS
    'Bounce rows dated before suppression_feed.folded_before that can still count, summed per address, month, class and reason: the suppression rules read each group as n rows instead of the rows (which retention may have removed). Rows dated before the address''s latest lift, and soft bounces before its latest delivery report, are left out.';
COMMENT ON COLUMN suppression_carried.address IS 'The address (lower-case).';
COMMENT ON COLUMN suppression_carried.class IS 'hard, soft, complaint or delivered.';
COMMENT ON COLUMN suppression_carried.reason IS 'The bounce reason; '''' for delivery reports.';
COMMENT ON COLUMN suppression_carried.domain IS 'Domain of the address.';
COMMENT ON COLUMN suppression_carried.n IS 'How many rows.';
COMMENT ON COLUMN suppression_carried.first_at IS 'bounced_at of the oldest of them.';
COMMENT ON COLUMN suppression_carried.last_at IS 'bounced_at of the newest of them.';
COMMENT ON COLUMN suppression_carried.month IS 'The UTC month of their bounced_at.';

ALTER TABLE suppression_feed ADD COLUMN folded_before timestamptz,
    ADD COLUMN expired_before timestamptz;
COMMENT ON COLUMN suppression_feed.folded_before IS
    'Bounce rows dated before this are read through suppression_carried by the suppression rules; NULL: none.';
COMMENT ON COLUMN suppression_feed.expired_before IS
    'Bounce rows dated before this (the start of a UTC month) were removed by retention; NULL: none.';

-- The rules of 010 over the address's bounce rows from folded_before on
-- and its carried groups (a group of n rows counts as n rows dated
-- last_at, first_at for the first bounce).  Same result as 010: a group
-- lies entirely before or after each lift and delivery report (see
-- bounce_history_fold), and its soft bounces are outside soft_window.
-- Only the partitions from folded_before on are read (run-time pruning).
CREATE OR REPLACE FUNCTION suppression_state_compute(addrs text[])
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
	last_bounced_at timestamptz,
	soft_expires_at timestamptz,
	lifted_at timestamptz
)
LANGUAGE sql STABLE AS $$
WITH cfg AS (
	SELECT st.soft_threshold, st.soft_window FROM settings st WHERE st.id
), l AS (
	SELECT sl.address, max(sl.lifted_at) AS lifted_at
	FROM suppression_lifts sl
	WHERE sl.address = ANY (addrs)
	GROUP BY sl.address
), x AS (
	SELECT b.recipient, b.recipient_domain, b.class, b.reason, b.action,
	    b.bounced_at, b.bounced_at AS first_at, b.counts, 1::bigint AS n
	FROM bounces b
	WHERE b.recipient = ANY (addrs)
	    AND b.bounced_at >= coalesce((SELECT f.folded_before
	        FROM suppression_feed f WHERE f.id), '-infinity')
	UNION ALL
	SELECT k.address, k.domain, k.class, k.reason, NULL, k.last_at,
	    k.first_at, true, k.n
	FROM suppression_carried k
	WHERE k.address = ANY (addrs)
), ov AS (
	-- the overrides as one value: a lookup per row without a join
	SELECT coalesce(jsonb_object_agg(ro.reason, ro.action), '{}') AS m
	FROM reason_overrides ro
), r AS (
	SELECT x.*,
	    max(x.bounced_at) FILTER (WHERE x.class = 'delivered')
	        OVER (PARTITION BY x.recipient) AS last_delivered_at,
	    l.lifted_at,
	    ov.m ->> x.reason AS override
	FROM x
	LEFT JOIN l ON l.address = x.recipient
	CROSS JOIN ov
), w AS (
	SELECT r.*,
	    CASE
	    WHEN r.class NOT IN ('hard', 'soft', 'complaint')
	        THEN 'not_a_failure'
	    WHEN coalesce(r.action, '') = 'delayed' THEN 'delayed'
	    WHEN NOT r.counts THEN 'not_counted'
	    WHEN r.override = 'never' THEN 'reason_never_counts'
	    WHEN r.bounced_at <= coalesce(r.lifted_at, '-infinity')
	        THEN 'before_unsuppress'
	    WHEN r.class = 'soft'
	        AND r.bounced_at <= coalesce(r.last_delivered_at, '-infinity')
	        THEN 'before_delivery_report'
	    WHEN r.class = 'soft' AND r.override IS NULL
	        AND r.bounced_at <= now() - cfg.soft_window
	        THEN 'outside_soft_window'
	    END AS why_not
	FROM r CROSS JOIN cfg
), c AS (
	SELECT w.recipient AS address, w.recipient_domain AS domain, w.reason,
	    w.bounced_at, w.first_at, w.n, w.lifted_at,
	    CASE WHEN w.why_not IS NOT NULL THEN NULL
	        WHEN w.class = 'soft' AND w.override = 'hard_after'
	            THEN 'override'
	        ELSE w.class END AS counted_as
	FROM w
), g AS (
	SELECT c.address, min(c.domain) AS domain,
	    coalesce(sum(c.n) FILTER (WHERE c.counted_as = 'hard'), 0)::bigint
	        AS hard_bounces,
	    coalesce(sum(c.n) FILTER (WHERE c.counted_as = 'complaint'), 0)
	        ::bigint AS complaints,
	    coalesce(sum(c.n) FILTER (WHERE c.counted_as = 'soft'), 0)::bigint
	        AS soft,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'complaint'))[1] AS complaint_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'hard'))[1] AS hard_reason,
	    (array_agg(c.reason ORDER BY c.bounced_at DESC, c.reason)
	        FILTER (WHERE c.counted_as = 'soft'))[1] AS soft_reason,
	    min(c.first_at) FILTER (WHERE c.counted_as IS NOT NULL)
	        AS first_bounced_at,
	    max(c.bounced_at) FILTER (WHERE c.counted_as IS NOT NULL)
	        AS last_bounced_at,
	    min(c.first_at) FILTER (WHERE c.counted_as = 'soft')
	        AS oldest_soft,
	    max(c.lifted_at) AS lifted_at
	FROM c
	GROUP BY c.address
), o AS (
	SELECT x.address,
	    (array_agg(x.reason ORDER BY x.last DESC, x.reason))[1]
	        AS override_reason
	FROM (
		SELECT c.address, c.reason, max(c.bounced_at) AS last
		FROM c
		JOIN reason_overrides ro ON ro.reason = c.reason
		WHERE c.counted_as = 'override'
		GROUP BY c.address, c.reason, ro.count
		HAVING sum(c.n) >= ro.count
	) x
	GROUP BY x.address
), s AS (
	SELECT g.*, o.override_reason,
	    CASE WHEN g.complaints > 0 THEN 'complaint'
	        WHEN g.hard_bounces > 0 THEN 'hard_bounce'
	        WHEN o.override_reason IS NOT NULL THEN 'reason_override'
	        WHEN g.soft >= cfg.soft_threshold THEN 'soft_bounces'
	    END AS because,
	    cfg.soft_window
	FROM g
	LEFT JOIN o ON o.address = g.address
	CROSS JOIN cfg
)
SELECT s.address, s.domain, s.because IS NOT NULL, s.because,
    CASE s.because WHEN 'complaint' THEN s.complaint_reason
        WHEN 'hard_bounce' THEN s.hard_reason
        WHEN 'reason_override' THEN s.override_reason
        WHEN 'soft_bounces' THEN s.soft_reason
    END,
    CASE s.because WHEN 'complaint' THEN 'complaint'
        WHEN 'hard_bounce' THEN 'hard'
        WHEN 'reason_override' THEN 'soft'
        WHEN 'soft_bounces' THEN 'soft'
    END,
    s.hard_bounces, s.complaints, s.soft,
    s.first_bounced_at, s.last_bounced_at,
    s.oldest_soft + s.soft_window, s.lifted_at
FROM s
$$;
COMMENT ON FUNCTION suppression_state_compute(text[]) IS
    'The suppression rules (as in suppression_status) for the given addresses only, over their bounce rows and the groups retention carried over, with when each must be evaluated again.';

-- ---- the partitioned table ----

ALTER TABLE bounces RENAME TO bounces_014;
CREATE TABLE bounces (LIKE bounces_014 INCLUDING DEFAULTS
    INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING COMMENTS)
PARTITION BY RANGE (bounced_at);
COMMENT ON TABLE bounces IS
    'One row per recipient named in a bounce, delay, delivery report, complaint or auto-reply. Partitioned by bounced_at: one table per UTC month (bounces_YYYY_MM), bounces_default for dates outside them.';
COMMENT ON COLUMN bounces.message_id IS
    'The fetched email this record came from (messages.id), not a Message-ID header. The ledger row may have been removed by retention.ledger.';
CREATE TABLE bounces_default PARTITION OF bounces DEFAULT;
COMMENT ON TABLE bounces_default IS
    'Bounce rows dated outside the monthly partitions (reports dated years back, or months not created yet).';

-- The monthly partitions, by name: bounces_YYYY_MM, [lower, upper).
CREATE FUNCTION bounce_partitions()
RETURNS TABLE (partition regclass, lower_bound timestamptz,
    upper_bound timestamptz)
LANGUAGE sql STABLE AS $$
SELECT c.oid::regclass, m.m AT TIME ZONE 'UTC',
    (m.m + interval '1 month') AT TIME ZONE 'UTC'
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL (
	SELECT to_date(substr(c.relname, 9), 'YYYY_MM')::timestamp AS m
) m
WHERE i.inhparent = 'bounces'::regclass
    AND c.relname ~ '^bounces_[0-9]{4}_[0-9]{2}$'
$$;
COMMENT ON FUNCTION bounce_partitions() IS
    'The monthly partitions of bounces with their bounds (UTC months).';

-- Creates the partition of the UTC month holding "month" (a UTC wall
-- time) unless it exists; rows of that month in the default partition
-- are moved into it.  Returns true when it created one.
CREATE FUNCTION bounce_partition_create(month timestamp)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	m timestamp := date_trunc('month', month);
	lo timestamptz := m AT TIME ZONE 'UTC';
	hi timestamptz := (m + interval '1 month') AT TIME ZONE 'UTC';
	name text := 'bounces_' || to_char(m, 'YYYY_MM');
BEGIN
	IF to_regclass(name) IS NOT NULL THEN
		RETURN false;
	END IF;
	IF EXISTS (SELECT 1 FROM bounces_default b
	    WHERE b.bounced_at >= lo AND b.bounced_at < hi) THEN
		EXECUTE format('CREATE TABLE %I (LIKE bounces INCLUDING DEFAULTS'
		    ' INCLUDING CONSTRAINTS)', name);
		EXECUTE format('WITH d AS (DELETE FROM bounces_default b'
		    ' WHERE b.bounced_at >= %L AND b.bounced_at < %L'
		    ' RETURNING b.*) INSERT INTO %I SELECT * FROM d',
		    lo, hi, name);
		EXECUTE format('ALTER TABLE bounces ATTACH PARTITION %I'
		    ' FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
	ELSE
		EXECUTE format('CREATE TABLE %I PARTITION OF bounces'
		    ' FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
	END IF;
	RETURN true;
END
$$;

-- Monthly partitions for every month from from_ts to to_ts.
CREATE FUNCTION bounce_partitions_cover(from_ts timestamptz,
    to_ts timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	m timestamp := date_trunc('month', from_ts AT TIME ZONE 'UTC');
	last timestamp := date_trunc('month', to_ts AT TIME ZONE 'UTC');
	n integer := 0;
BEGIN
	WHILE m <= last LOOP
		IF bounce_partition_create(m) THEN
			n := n + 1;
		END IF;
		m := m + interval '1 month';
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION bounce_partitions_cover(timestamptz, timestamptz) IS
    'Creates the monthly partitions of bounces from from_ts to to_ts that do not exist yet (moving their rows out of bounces_default). Returns how many it created.';

-- The months after the newest partition up to months_ahead months from
-- now (bouncerd calls it after each pass: a no-op but for a catalog
-- lookup once they exist).
CREATE FUNCTION bounce_partitions_ensure(months_ahead integer DEFAULT 1)
RETURNS integer
LANGUAGE sql AS $$
SELECT CASE WHEN coalesce(max(p.upper_bound), '-infinity')
        > now() + make_interval(months => months_ahead)
    THEN 0
    ELSE bounce_partitions_cover(
        coalesce(max(p.upper_bound), now()),
        now() + make_interval(months => months_ahead))
    END
FROM bounce_partitions() p
$$;
COMMENT ON FUNCTION bounce_partitions_ensure(integer) IS
    'Creates the monthly partitions of bounces up to months_ahead months from now (bouncerd calls it after each pass). Returns how many it created.';

-- the months of the history (at most ten years back; older rows stay in
-- the default partition) and the next one
SELECT bounce_partitions_cover(
    greatest(coalesce((SELECT min(b.bounced_at) FROM bounces_014 b), now()),
        now() - interval '10 years'),
    now() + interval '1 month');

INSERT INTO bounces OVERRIDING SYSTEM VALUE
SELECT * FROM bounces_014;
SELECT setval(pg_get_serial_sequence('bounces', 'id'),
    coalesce((SELECT max(b.id) FROM bounces_014 b), 0) + 1, false);

-- the views on bounces are made again below, with their comments
CREATE TEMP TABLE view_comments ON COMMIT DROP AS
SELECT c.relname AS view, NULL::name AS col,
    obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
WHERE c.oid IN ('suppression_evidence'::regclass,
    'bounce_stats_daily'::regclass)
UNION ALL
SELECT c.relname, a.attname, col_description(c.oid, a.attnum)
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
WHERE c.oid IN ('suppression_evidence'::regclass,
    'bounce_stats_daily'::regclass);
DROP VIEW suppression_evidence;
DROP VIEW bounce_stats_daily;
DROP TABLE bounces_014;
ALTER SEQUENCE IF EXISTS bounces_id_seq1 RENAME TO bounces_id_seq;

ALTER TABLE bounces ADD PRIMARY KEY (id, bounced_at);
CREATE INDEX bounces_recipient_idx ON bounces (recipient, bounced_at)
    INCLUDE (recipient_domain, class, reason, action, counts);
CREATE INDEX bounces_domain_idx ON bounces (recipient_domain, bounced_at);
CREATE INDEX bounces_bounced_at_idx ON bounces (bounced_at);
CREATE INDEX bounces_message_id_idx ON bounces (message_id);
CREATE INDEX bounces_campaign_idx ON bounces (campaign_id)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX bounces_original_message_id_idx ON bounces (original_message_id)
    WHERE original_message_id IS NOT NULL;
CREATE INDEX bounces_day_idx ON bounces
    (((bounced_at AT TIME ZONE 'UTC')::date), recipient_domain);

CREATE TRIGGER bounces_notify_suppression AFTER INSERT ON bounces
REFERENCING NEW TABLE AS new_bounces
FOR EACH STATEMENT EXECUTE FUNCTION bounces_notify_suppression_stmt();

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

CREATE VIEW suppression_evidence AS
SELECT c.address, c.bounced_at, c.class, c.reason, c.counted_as,
    c.not_counted_because, b.status, b.reply_code, b.action, b.diagnostic,
    b.remote_mta, b.original_message_id, b.campaign_id, b.recipient_source,
    m.uidl, mb.name AS mailbox, b.id AS bounce_id, b.message_id
FROM bounce_counting(NULL) c
JOIN bounces b ON b.id = c.bounce_id
LEFT JOIN messages m ON m.id = b.message_id
LEFT JOIN mailboxes mb ON mb.id = m.mailbox_id;

DO $$
DECLARE
	v record;
BEGIN
	FOR v IN SELECT * FROM view_comments WHERE comment IS NOT NULL LOOP
		IF v.col IS NULL THEN
			EXECUTE format('COMMENT ON VIEW %I IS %L', v.view,
			    v.comment);
		ELSE
			EXECUTE format('COMMENT ON COLUMN %I.%I IS %L', v.view,
			    v.col, v.comment);
		END IF;
	END LOOP;
END
$$;
COMMENT ON COLUMN suppression_evidence.uidl IS
    'POP3 id of the bounce email in its mailbox; NULL once retention.ledger removed its ledger row.';

-- ---- folding and retention ----

-- Folds the bounce rows of src dated in [lo, hi) (of the addresses in
-- addrs; NULL: all) that can still count into
-- suppression_carried: counted failures and delivery reports after the
-- address's latest lift, soft bounces only after its latest delivery
-- report.  Carried groups that the folded rows make obsolete (soft
-- bounces before a delivery report, anything before a lift) are removed,
-- so that every group lies entirely before or after each lift and
-- delivery report.  Returns the number of groups written.
CREATE FUNCTION bounce_history_fold(src text, lo timestamptz,
    hi timestamptz, addrs text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
	CREATE TEMP TABLE bounce_fold ON COMMIT DROP AS
	WITH r AS (
		SELECT b.recipient AS address, b.recipient_domain AS domain,
		    b.class, CASE WHEN b.class = 'delivered' THEN ''
		        ELSE b.reason END AS reason, b.bounced_at
		FROM %s b
		LEFT JOIN (
			SELECT sl.address, max(sl.lifted_at) AS lifted_at
			FROM suppression_lifts sl GROUP BY sl.address
		) l ON l.address = b.recipient
		WHERE b.recipient IS NOT NULL
		    AND (%L::text[] IS NULL OR b.recipient = ANY (%L::text[]))
		    AND b.bounced_at >= %L::timestamptz
		    AND b.bounced_at < %L::timestamptz
		    AND (b.class = 'delivered'
		        OR (b.counts AND b.class IN ('hard', 'soft', 'complaint')
		            AND coalesce(b.action, '') <> 'delayed'))
		    AND b.bounced_at > coalesce(l.lifted_at, '-infinity')
	), d AS (
		SELECT r.*,
		    max(r.bounced_at) FILTER (WHERE r.class = 'delivered')
		        OVER (PARTITION BY r.address) AS delivered_here
		FROM r
	), k AS (
		SELECT k.address, max(k.last_at) AS last_at
		FROM suppression_carried k
		WHERE k.class = 'delivered'
		    AND k.address IN (SELECT d.address FROM d)
		GROUP BY k.address
	)
	SELECT d.address,
	    (date_trunc('month', d.bounced_at AT TIME ZONE 'UTC'))::date
	        AS month,
	    d.class, d.reason, min(d.domain) AS domain, count(*) AS n,
	    min(d.bounced_at) AS first_at, max(d.bounced_at) AS last_at,
	    max(d.delivered_here) AS delivered_here
	FROM d
	LEFT JOIN k ON k.address = d.address
	WHERE NOT (d.class = 'soft' AND d.bounced_at <= coalesce(
	    greatest(d.delivered_here, k.last_at), '-infinity'))
	GROUP BY 1, 2, 3, 4
	$q$, src, addrs, addrs, coalesce(lo, '-infinity'),
	    coalesce(hi, 'infinity'));
	DELETE FROM suppression_carried k
	USING (SELECT f.address, max(f.delivered_here) AS dl
	    FROM bounce_fold f GROUP BY f.address) f
	WHERE k.address = f.address AND k.class = 'soft' AND k.last_at <= f.dl;
	DELETE FROM suppression_carried k
	USING (SELECT sl.address, max(sl.lifted_at) AS lifted_at
	    FROM suppression_lifts sl
	    WHERE sl.address IN (SELECT f.address FROM bounce_fold f)
	    GROUP BY sl.address) l
	WHERE k.address = l.address AND k.last_at <= l.lifted_at;
	INSERT INTO suppression_carried AS k (address, month, class, reason,
	    domain, n, first_at, last_at)
	SELECT f.address, f.month, f.class, f.reason, f.domain, f.n,
	    f.first_at, f.last_at
	FROM bounce_fold f
	ORDER BY f.address, f.month, f.class, f.reason
	ON CONFLICT (address, month, class, reason) DO UPDATE SET
	    n = k.n + EXCLUDED.n,
	    first_at = least(k.first_at, EXCLUDED.first_at),
	    last_at = greatest(k.last_at, EXCLUDED.last_at),
	    domain = coalesce(k.domain, EXCLUDED.domain);
	GET DIAGNOSTICS n = ROW_COUNT;
	DROP TABLE bounce_fold;
	RETURN n;
END
$$;
COMMENT ON FUNCTION bounce_history_fold(text, timestamptz, timestamptz, text[]) IS
    'Sums the bounce rows of a table dated in [lo, hi) that can still count into suppression_carried (used by bounce_history_fold_to and suppression_refold). Returns the number of groups written.';

-- The groups of these addresses made again from their rows (the months
-- retention removed keep theirs): after a bounce or a lift dated before
-- folded_before, which may fall inside a group.  The caller holds the
-- addresses' row locks.
CREATE FUNCTION suppression_refold(addrs text[])
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	horizon timestamptz;
	expired timestamptz;
BEGIN
	SELECT f.folded_before, f.expired_before INTO horizon, expired
	FROM suppression_feed f WHERE f.id;
	IF horizon IS NULL OR coalesce(cardinality(addrs), 0) = 0 THEN
		RETURN 0;
	END IF;
	DELETE FROM suppression_carried k
	WHERE k.address = ANY (addrs)
	    AND k.month >= coalesce((expired AT TIME ZONE 'UTC')::date,
	        '-infinity');
	RETURN bounce_history_fold('bounces', expired, horizon, addrs);
END
$$;
COMMENT ON FUNCTION suppression_refold(text[]) IS
    'Makes the carried groups of these addresses again from their bounce rows before folded_before (after a late bounce or a backdated lift).';

-- Moves folded_before on to target: the rows dated before it are read as
-- carried groups from then on.  Recording waits meanwhile (SHARE ROW
-- EXCLUSIVE on bounces, then EXCLUSIVE on suppression_state, in the order
-- a recording transaction takes them).  Returns the groups written.
CREATE FUNCTION bounce_history_fold_to(target timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	lo timestamptz;
	n bigint;
BEGIN
	SELECT f.folded_before INTO lo FROM suppression_feed f WHERE f.id;
	IF lo >= target THEN
		RETURN 0;
	END IF;
	LOCK TABLE bounces IN SHARE ROW EXCLUSIVE MODE;
	LOCK TABLE suppression_state IN EXCLUSIVE MODE;
	SELECT f.folded_before INTO lo FROM suppression_feed f WHERE f.id
	FOR UPDATE;
	IF lo >= target THEN
		RETURN 0;
	END IF;
	n := bounce_history_fold('bounces', lo, target);
	UPDATE suppression_feed SET folded_before = target WHERE id;
	RETURN n;
END
$$;
COMMENT ON FUNCTION bounce_history_fold_to(timestamptz) IS
    'Folds the bounce rows dated from suppression_feed.folded_before to target into suppression_carried and moves folded_before to target. Returns the number of groups written.';

-- folded_before trails soft_window by less than a month: the start of the
-- UTC month in which soft_window begins (bouncerd calls it after each
-- pass; a lookup when nothing is due).
CREATE FUNCTION suppression_fold_history()
RETURNS bigint
LANGUAGE sql AS $$
SELECT bounce_history_fold_to(date_trunc('month',
    (now() - st.soft_window) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
FROM settings st WHERE st.id
$$;
COMMENT ON FUNCTION suppression_fold_history() IS
    'Folds the bounce rows dated before the month in which soft_window begins (bouncerd calls it after each pass). Returns the number of groups written.';

-- Removes the bounce history older than keep (at least soft_window, and
-- only folded rows): the monthly partitions that end before then are
-- dropped whole, rows of the default partition dated before then are
-- deleted.  Their groups in suppression_carried stay.  Returns the
-- number of bounce rows removed.
CREATE FUNCTION bounce_history_expire(keep interval)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	cutoff timestamptz;
	horizon timestamptz;
	p record;
	n bigint := 0;
	k bigint;
BEGIN
	PERFORM suppression_fold_history();
	SELECT now() - greatest(keep, st.soft_window) INTO cutoff
	FROM settings st WHERE st.id;
	SELECT f.folded_before INTO horizon FROM suppression_feed f WHERE f.id;
	IF horizon IS NULL THEN
		RETURN 0;
	END IF;
	-- whole months, all folded
	cutoff := date_trunc('month', least(cutoff, horizon) AT TIME ZONE 'UTC')
	    AT TIME ZONE 'UTC';
	IF NOT EXISTS (SELECT 1 FROM bounce_partitions() x
	        WHERE x.upper_bound <= cutoff)
	    AND NOT EXISTS (SELECT 1 FROM bounces_default b
	        WHERE b.bounced_at < cutoff) THEN
		RETURN 0;
	END IF;
	-- recording (and the groups it makes again) waits meanwhile
	LOCK TABLE bounces IN SHARE ROW EXCLUSIVE MODE;
	UPDATE suppression_feed SET expired_before = greatest(expired_before,
	    cutoff) WHERE id;
	DELETE FROM bounces_default b WHERE b.bounced_at < cutoff;
	GET DIAGNOSTICS k = ROW_COUNT;
	n := n + k;
	FOR p IN SELECT x.partition FROM bounce_partitions() x
	    WHERE x.upper_bound <= cutoff ORDER BY x.lower_bound LOOP
		EXECUTE format('SELECT count(*) FROM %s', p.partition) INTO k;
		n := n + k;
		EXECUTE format('DROP TABLE %s', p.partition);
	END LOOP;
	RETURN n;
END
$$;
COMMENT ON FUNCTION bounce_history_expire(interval) IS
    'retention.bounces: drops the months of bounce history older than keep (never less than soft_window); what can still count is kept in suppression_carried, so the suppression list is unchanged. Returns the number of bounce rows removed.';

-- The bounces trigger of 010, plus: an address with a row dated before
-- folded_before has its carried groups made again (under its row lock,
-- taken in address order as suppression_state_refresh takes them), since
-- the rules no longer read such rows.
CREATE OR REPLACE FUNCTION bounces_notify_suppression_stmt() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
	addrs text[];
	late text[];
BEGIN
	SELECT array_agg(DISTINCT n.recipient) INTO addrs
	FROM new_bounces n
	WHERE n.recipient IS NOT NULL
	    AND (n.class = 'delivered'
	        OR (n.counts AND n.class IN ('hard', 'soft', 'complaint')
	            AND coalesce(n.action, '') <> 'delayed'));
	SELECT array_agg(DISTINCT n.recipient) INTO late
	FROM new_bounces n, suppression_feed f
	WHERE f.id AND n.bounced_at < f.folded_before
	    AND n.recipient = ANY (addrs);
	IF late IS NOT NULL THEN
		INSERT INTO suppression_state AS t (address)
		SELECT DISTINCT a FROM unnest(addrs) AS a ORDER BY 1
		ON CONFLICT (address) DO UPDATE SET address = EXCLUDED.address
		    WHERE false;
		PERFORM suppression_refold(late);
	END IF;
	PERFORM suppression_state_refresh(addrs, 'bounce');
	RETURN NULL;
END
$$;

-- The lifts trigger of 010, plus: a lift dated before folded_before has
-- its address's groups made again around it.
CREATE OR REPLACE FUNCTION suppression_lifts_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	addrs text[];
	late text[];
BEGIN
	SELECT array_agg(DISTINCT n.address) INTO addrs FROM new_lifts n;
	SELECT array_agg(DISTINCT n.address) INTO late
	FROM new_lifts n, suppression_feed f
	WHERE f.id AND n.lifted_at < f.folded_before;
	IF late IS NOT NULL THEN
		INSERT INTO suppression_state AS t (address)
		SELECT DISTINCT a FROM unnest(addrs) AS a ORDER BY 1
		ON CONFLICT (address) DO UPDATE SET address = EXCLUDED.address
		    WHERE false;
		PERFORM suppression_refold(late);
	END IF;
	PERFORM suppression_state_refresh(addrs, 'lift');
	RETURN NULL;
END
$$;

-- suppression_rules_sync() of 010, plus: a longer soft_window that
-- reaches back past folded_before reads the months still kept as rows
-- again (their groups are removed; the groups of months retention removed
-- stay).  Takes the lock on bounces first, as recording does.
CREATE OR REPLACE FUNCTION suppression_rules_sync() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	cur text;
	done text;
	cause text := 'settings';
	chunk text[];
	last text := '';
	total bigint := 0;
	horizon timestamptz;
	want timestamptz;
BEGIN
	SELECT format('%s|%s|%s', st.soft_threshold, st.soft_window,
	    (SELECT string_agg(format('%s:%s:%s', o.reason, o.action, o.count),
	        ',' ORDER BY o.reason) FROM reason_overrides o))
	INTO cur FROM settings st WHERE st.id;
	SELECT f.rules INTO done FROM suppression_feed f WHERE f.id;
	IF done IS NOT DISTINCT FROM cur THEN
		RETURN 0;
	END IF;
	-- the first evaluation (the migration) starts the feed: what the
	-- history already says is the list, not a change of it
	IF done IS NULL THEN
		cause := 'initial';
	END IF;
	LOCK TABLE bounces IN SHARE ROW EXCLUSIVE MODE;
	LOCK TABLE suppression_state IN EXCLUSIVE MODE;
	SELECT f.folded_before INTO horizon FROM suppression_feed f WHERE f.id;
	SELECT date_trunc('month', (now() - st.soft_window) AT TIME ZONE 'UTC')
	    AT TIME ZONE 'UTC' INTO want
	FROM settings st WHERE st.id;
	IF horizon > want THEN
		DELETE FROM suppression_carried k
		WHERE k.month >= (want AT TIME ZONE 'UTC')::date
		    AND k.month >= coalesce((SELECT (f.expired_before AT TIME
		        ZONE 'UTC')::date FROM suppression_feed f WHERE f.id),
		        '-infinity');
		UPDATE suppression_feed SET folded_before = want WHERE id;
	END IF;
	LOOP
		SELECT array_agg(x.a ORDER BY x.a) INTO chunk
		FROM (
			SELECT a FROM (
				(SELECT DISTINCT b.recipient AS a FROM bounces b
				 WHERE b.recipient > last
				 ORDER BY 1 LIMIT 5000)
				UNION
				(SELECT s.address FROM suppression_state s
				 WHERE s.address > last
				 ORDER BY 1 LIMIT 5000)
			) y ORDER BY 1 LIMIT 5000
		) x;
		EXIT WHEN chunk IS NULL;
		-- only addresses that have (or had) a row that can count
		PERFORM suppression_state_refresh(ARRAY(
		    SELECT a FROM unnest(chunk) a
		    WHERE EXISTS (SELECT 1 FROM suppression_state s
		            WHERE s.address = a)
		        OR EXISTS (SELECT 1 FROM bounces b
		            WHERE b.recipient = a
		            AND (b.class = 'delivered'
		                OR (b.counts
		                    AND b.class IN ('hard', 'soft', 'complaint')
		                    AND coalesce(b.action, '') <> 'delayed')))),
		    cause);
		total := total + cardinality(chunk);
		last := chunk[cardinality(chunk)];
	END LOOP;
	UPDATE suppression_feed SET rules = cur WHERE id;
	RETURN total;
END
$$;

-- Ledger rows of recorded bounces deleted from the server (or found gone)
-- more than keep ago, up to max_rows of them.  Messages that are not
-- bounces and failed ones are kept (their raw bytes are all that is left
-- of them).  Call again while it returns max_rows.
CREATE INDEX messages_gone_idx ON messages (deleted_at)
    WHERE deleted_at IS NOT NULL AND outcome = 'recorded'
        AND kind <> 'unknown';
CREATE FUNCTION ledger_expire(keep interval, max_rows integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	n integer;
BEGIN
	DELETE FROM messages m
	WHERE m.id IN (
		SELECT x.id FROM messages x
		WHERE x.deleted_at IS NOT NULL AND x.outcome = 'recorded'
		    AND x.kind <> 'unknown' AND x.deleted_at < now() - keep
		ORDER BY x.deleted_at
		LIMIT max_rows);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION ledger_expire(interval, integer) IS
    'retention.ledger: removes up to max_rows ledger rows of recorded bounces deleted from the server more than keep ago (a message of such a UIDL would be processed again if the server listed it again). Returns how many it removed.';

-- the history before soft_window's month, folded once now
DO $$ BEGIN PERFORM suppression_fold_history(); END $$;
