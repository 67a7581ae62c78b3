-- 027_months_left_out.sql - recording costs the same whatever the number
-- of months of bounce history kept.
--   * bounces is partitioned by month, and bounce rows are kept for ever
--     by default.  suppression_state_refresh looks for delivery reports
--     dated after an address's new soft bounces; the month of that search
--     depends on each address, so each execution of the cached plan
--     opened every month's recipient index and skipped all but one or
--     two: nine tables in the ten-million-row benchmark (six months of
--     history, the next month's and the default), sixty after five
--     years.  The search is now also bounded by the start of
--     soft_window, a parameter (the settings are read into variables
--     first), which leaves the earlier months out when the statement
--     starts.
--   * suppression_state_compute reads rows from folded_before on, which
--     it took from a sub-select evaluated while running; it is now a
--     parameter too, with the same effect on the months already folded.

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
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
	lo timestamptz;
BEGIN
	IF coalesce(cardinality(addrs), 0) = 0 THEN
		RETURN;
	END IF;
	-- a parameter, so that the months before it are left out when the
	-- statement starts instead of being opened and skipped
	SELECT coalesce(f.folded_before, '-infinity') INTO lo
	FROM suppression_feed f WHERE f.id;
	RETURN QUERY
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
		    AND b.bounced_at >= coalesce(lo, '-infinity')
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
	FROM s;
END
$$;
COMMENT ON FUNCTION suppression_state_compute(text[]) IS
    'The suppression rules (as in suppression_status) for the given addresses only, over their bounce rows and the groups retention carried over, with when each must be evaluated again. Planned once per session.';

CREATE OR REPLACE FUNCTION suppression_state_refresh(addrs text[], cause text,
    news suppression_news[] DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
DECLARE
	ch_addr text[];
	ch_kind text[];
	ch_because text[];
	ch_reason text[];
	ch_class text[];
	base bigint;
	n integer;
	threshold integer;
	win interval;
BEGIN
	IF coalesce(cardinality(addrs), 0) = 0 THEN
		RETURN 0;
	END IF;
	-- the addresses' locks (no deadlock between writers)
	PERFORM suppression_lock(addrs);
	-- the settings as parameters: the months before the window are left
	-- out of the search for delivery reports when the statement starts
	SELECT st.soft_threshold, st.soft_window INTO threshold, win
	FROM settings st WHERE st.id;
	-- a new snapshot: includes what writers before us committed
	WITH cfg AS (
		SELECT threshold AS soft_threshold, win AS soft_window
	), fx AS MATERIALIZED (
		-- the addresses whose new rows only add to what is stored
		SELECT nn.*, cur.domain AS cur_domain, cur.suppressed_because
		        AS cur_because, cur.reason AS cur_reason,
		    cur.hard_bounces + nn.new_hard AS hard_bounces,
		    cur.complaints + nn.new_complaints AS complaints,
		    cur.recent_soft_bounces + nn.new_soft AS soft,
		    cur.first_bounced_at, cur.soft_expires_at, cur.lifted_at,
		    cfg.soft_threshold, cfg.soft_window
		FROM unnest(news) AS nn
		JOIN suppression_state cur ON cur.address = nn.address
		CROSS JOIN cfg
		WHERE nn.additive
		    AND nn.first_at > coalesce(cur.last_bounced_at, '-infinity')
		    AND nn.first_at > coalesce(cur.lifted_at, '-infinity')
		    AND coalesce(cur.soft_expires_at, 'infinity') > now()
		    AND (nn.first_soft_at IS NULL
		        OR (nn.first_soft_at > now() - cfg.soft_window
		            AND NOT EXISTS (SELECT 1 FROM bounces b
		                WHERE b.recipient = nn.address
		                    AND b.bounced_at >= nn.first_soft_at
		                    AND b.bounced_at > now() - win
		                    AND b.class = 'delivered')))
	), fb AS (
		SELECT fx.*,
		    CASE WHEN fx.complaints > 0 THEN 'complaint'
		        WHEN fx.hard_bounces > 0 THEN 'hard_bounce'
		        WHEN fx.cur_because = 'reason_override'
		            THEN 'reason_override'
		        WHEN fx.soft >= fx.soft_threshold THEN 'soft_bounces'
		    END AS because
		FROM fx
	), cm AS MATERIALIZED (
		SELECT * FROM suppression_state_compute(ARRAY(
		    SELECT a FROM unnest(addrs) AS a
		    EXCEPT SELECT fx.address FROM fx))
	), nw AS MATERIALIZED (
		SELECT * FROM cm
		UNION ALL
		SELECT fb.address, least(fb.cur_domain, fb.domain),
		    fb.because IS NOT NULL, fb.because,
		    CASE fb.because
		    WHEN 'complaint' THEN CASE WHEN fb.new_complaints > 0
		        THEN fb.complaint_reason ELSE fb.cur_reason END
		    WHEN 'hard_bounce' THEN CASE WHEN fb.new_hard > 0
		        THEN fb.hard_reason ELSE fb.cur_reason END
		    WHEN 'reason_override' THEN fb.cur_reason
		    WHEN 'soft_bounces' THEN CASE WHEN fb.new_soft > 0
		        THEN fb.soft_reason ELSE fb.cur_reason END
		    END,
		    CASE fb.because WHEN 'complaint' THEN 'complaint'
		        WHEN 'hard_bounce' THEN 'hard'
		        WHEN 'reason_override' THEN 'soft'
		        WHEN 'soft_bounces' THEN 'soft'
		    END,
		    fb.hard_bounces, fb.complaints, fb.soft,
		    coalesce(fb.first_bounced_at, fb.first_at), fb.last_at,
		    coalesce(fb.soft_expires_at,
		        fb.first_soft_at + fb.soft_window),
		    fb.lifted_at
		FROM fb
		UNION ALL
		-- nothing left that can count: not suppressed
		SELECT e.a, cur.domain, false, NULL, NULL, NULL, 0, 0, 0, NULL,
		    NULL, NULL, (SELECT max(sl.lifted_at) FROM suppression_lifts sl
		        WHERE sl.address = e.a)
		FROM (
			-- set differences (hashed), not anti-joins: with hash
			-- joins off these would compare every pair
			SELECT a FROM unnest(addrs) AS a WHERE a IS NOT NULL
			EXCEPT SELECT cm.address FROM cm
			EXCEPT SELECT fx.address FROM fx
		) e
		JOIN suppression_state cur ON cur.address = e.a
	), d AS MATERIALIZED (
		SELECT nw.*, cur.suppressed AS was,
		    cur.suppressed_since AS was_since,
		    CASE
		    WHEN nw.suppressed AND NOT cur.suppressed THEN 'added'
		    WHEN cur.suppressed AND NOT nw.suppressed THEN
		        CASE WHEN cause = 'lift' THEN 'lifted' ELSE 'expired' END
		    WHEN nw.suppressed AND (nw.suppressed_because, nw.reason,
		        nw.class) IS DISTINCT FROM (cur.suppressed_because,
		        cur.reason, cur.class) THEN 'reason_changed'
		    END AS change,
		    CASE WHEN nw.suppressed THEN nw.suppressed_because
		        ELSE cur.suppressed_because END AS ch_because,
		    CASE WHEN nw.suppressed THEN nw.reason
		        ELSE cur.reason END AS ch_reason,
		    CASE WHEN nw.suppressed THEN nw.class
		        ELSE cur.class END AS ch_class
		FROM nw
		JOIN suppression_state cur ON cur.address = nw.address
		WHERE (nw.domain, nw.suppressed, nw.suppressed_because,
		    nw.reason, nw.class, nw.hard_bounces, nw.complaints,
		    nw.recent_soft_bounces, nw.first_bounced_at,
		    nw.last_bounced_at, nw.soft_expires_at, nw.lifted_at)
		    IS DISTINCT FROM (cur.domain, cur.suppressed,
		    cur.suppressed_because, cur.reason, cur.class,
		    cur.hard_bounces, cur.complaints, cur.recent_soft_bounces,
		    cur.first_bounced_at, cur.last_bounced_at,
		    cur.soft_expires_at, cur.lifted_at)
	), u AS (
		UPDATE suppression_state t SET domain = d.domain,
		    suppressed = d.suppressed,
		    suppressed_because = d.suppressed_because,
		    reason = d.reason, class = d.class,
		    hard_bounces = d.hard_bounces, complaints = d.complaints,
		    recent_soft_bounces = d.recent_soft_bounces,
		    first_bounced_at = d.first_bounced_at,
		    last_bounced_at = d.last_bounced_at,
		    suppressed_since = CASE WHEN NOT d.suppressed THEN NULL
		        WHEN d.change = 'added' THEN now()
		        ELSE d.was_since END,
		    lifted_at = d.lifted_at,
		    soft_expires_at = d.soft_expires_at,
		    updated_at = now()
		FROM d WHERE t.address = d.address
	)
	SELECT array_agg(d.address ORDER BY d.address),
	    array_agg(d.change ORDER BY d.address),
	    array_agg(d.ch_because ORDER BY d.address),
	    array_agg(d.ch_reason ORDER BY d.address),
	    array_agg(d.ch_class ORDER BY d.address)
	INTO ch_addr, ch_kind, ch_because, ch_reason, ch_class
	FROM d WHERE d.change IS NOT NULL;
	n := coalesce(cardinality(ch_addr), 0);
	IF n = 0 OR cause = 'initial' THEN
		RETURN 0;
	END IF;
	-- ids from the counter row, locked until COMMIT
	UPDATE suppression_feed SET last_change_id = last_change_id + n
	WHERE id RETURNING last_change_id - n INTO base;
	INSERT INTO suppression_changes (id, address, change,
	    suppressed_because, reason, class)
	SELECT base + x.i, x.a, x.k, x.b, x.r, x.c
	FROM unnest(ch_addr, ch_kind, ch_because, ch_reason, ch_class)
	    WITH ORDINALITY AS x(a, k, b, r, c, i);
	PERFORM pg_notify('bouncerd_suppression', json_build_object(
	    'id', base + x.i, 'change', x.k, 'address', x.a,
	    'reason', x.r, 'class', x.c, 'suppressed_because', x.b)::text)
	FROM unnest(ch_addr, ch_kind, ch_because, ch_reason, ch_class)
	    WITH ORDINALITY AS x(a, k, b, r, c, i)
	ORDER BY x.i;
	RETURN n;
END
$$;
COMMENT ON FUNCTION suppression_state_refresh(text[], text, suppression_news[]) IS
    'Evaluates the suppression rules for these addresses under their locks (suppression_lock; from news alone for an address whose new rows only add to its stored state; over its history otherwise; an address with no row the rules can read is not suppressed), stores the result, appends the changes to suppression_changes and sends NOTIFY bouncerd_suppression for each. Returns the number of changes.';
