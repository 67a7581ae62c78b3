-- 023_state_from_new_rows.sql - the stored suppression state costs what
-- a batch's new rows cost, not what an address's history costs.
--   * An address with new failures that only add to its stored state is
--     updated from their sums instead of being evaluated again over its
--     history.  The bounces trigger sums each address's new rows that can
--     count (per class: how many, the earliest and latest date, the latest
--     reason) and hands them to suppression_state_refresh.  They only add
--     when they are later than everything the state was evaluated from
--     (its latest counted bounce and its latest lift), none is a delivery
--     report, none has a reason override, its new soft bounces are within
--     soft_window with no delivery report dated after them, and none of
--     its counted soft bounces has left the window since (soft_expires_at
--     still ahead): then the counts only grow, the latest reasons are the
--     new rows', and the rules give what the sums give.  Every other
--     address (late rows, a delivery report, overrides, a lift, the
--     expiry) is evaluated over its history as before.
--   * suppression_state_compute, the evaluation over the history, is
--     PL/pgSQL, so that its plan is made once per session: as SQL it was
--     planned again on every call, about 4 ms, more than the evaluation of
--     a batch's addresses.
--   * An address with no row left that the rules read (once the history
--     before soft_window's month is folded, only rows that can still count
--     are carried, so a lift dated after all of them leaves none) is
--     evaluated as not suppressed, with its latest lift.  Before, the
--     evaluation returned nothing for it and its stored state kept the old
--     verdict; such addresses are evaluated again at the end of this
--     migration, their change announced as a lift.
--   * Writers of the state serialise per address with transaction
--     advisory locks instead of row locks on suppression_state.  A row
--     lock writes the row (its locker is recorded in the tuple), so
--     locking a batch's 50 addresses dirtied up to 50 random pages of a
--     two-million-row table and wrote WAL for each; an advisory lock lives
--     in memory.  suppression_lock(addrs) takes them in the order of their
--     keys (a 64-bit hash of the address), so that two writers never wait
--     on each other in a circle, then makes the state rows of new
--     addresses.  Advisory locks take room in the server's lock table,
--     sized for about 64 per connection: for more than 1,000 addresses at
--     once (the re-evaluation after a change of settings, a huge batch)
--     it locks the table against every other writer instead.  Every writer of suppression_state takes them first:
--     recording (the bounces trigger), lifts (the lifts trigger and
--     unsuppress), expiry and the re-evaluation after a change of settings
--     (both through suppression_state_refresh).  As with the row locks,
--     the statements after the locks see what the writers before
--     committed, so each change is announced exactly once.
--   * At ten million bounce rows, recording a batch of 50 went from 35-44 %
--     of the rate into an empty database to 52-71 %.

CREATE TYPE suppression_news AS (
	address text,
	domain text,
	additive boolean,
	new_hard bigint,
	new_complaints bigint,
	new_soft bigint,
	first_at timestamptz,
	last_at timestamptz,
	first_soft_at timestamptz,
	hard_reason text,
	complaint_reason text,
	soft_reason text
);
COMMENT ON TYPE suppression_news IS
    'The new bounce rows of one address that can count, summed (by the bounces trigger for suppression_state_refresh): whether they can be added to the stored state (no delivery report, no reason override, not dated before folded_before), counts per class, earliest and latest date, earliest soft bounce, latest reason per class.';

-- The evaluation over an address's history, as in 015, planned once per
-- session (as SQL it was planned again on every call: about 4 ms, more
-- than the evaluation of a batch's addresses).
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
BEGIN
	IF coalesce(cardinality(addrs), 0) = 0 THEN
		RETURN;
	END IF;
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
	FROM s;
END
$$;
COMMENT ON FUNCTION suppression_state_compute(text[]) IS
    'The suppression rules (as in suppression_status) for the given addresses only, over their bounce rows and the groups retention carried over, with when each must be evaluated again. Planned once per session.';

CREATE FUNCTION suppression_lock(addrs text[])
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
	IF cardinality(addrs) > 1000 THEN
		-- more locks than the server's lock table is sized for (64 per
		-- connection by default, shared): every other writer waits
		LOCK TABLE suppression_state IN SHARE ROW EXCLUSIVE MODE;
	ELSE
		PERFORM pg_advisory_xact_lock(x.k)
		FROM (SELECT DISTINCT
		        hashtextextended('bouncerd.suppression:' || a, 0) AS k
		    FROM unnest(addrs) AS a WHERE a IS NOT NULL ORDER BY 1) x;
	END IF;
	INSERT INTO suppression_state AS t (address)
	SELECT DISTINCT a FROM unnest(addrs) AS a WHERE a IS NOT NULL
	ORDER BY 1
	ON CONFLICT (address) DO NOTHING;
END
$$;
COMMENT ON FUNCTION suppression_lock(text[]) IS
    'Takes the transaction advisory lock of each address (in key order; every writer of suppression_state takes them first), or for more than 1,000 addresses a lock on the table that holds off every other writer, and makes the state rows of addresses that have none. Held until COMMIT.';

DROP FUNCTION suppression_state_refresh(text[], text);
CREATE FUNCTION suppression_state_refresh(addrs text[], cause text,
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
BEGIN
	IF coalesce(cardinality(addrs), 0) = 0 THEN
		RETURN 0;
	END IF;
	-- the addresses' locks (no deadlock between writers)
	PERFORM suppression_lock(addrs);
	-- a new snapshot: includes what writers before us committed
	WITH cfg AS (
		SELECT st.soft_threshold, st.soft_window FROM settings st
		WHERE st.id
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

-- The bounces trigger of 015, summing the new rows per address first.
CREATE OR REPLACE FUNCTION bounces_notify_suppression_stmt() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
	addrs text[];
	late text[];
	news suppression_news[];
BEGIN
	-- one pass over the statement's rows that can change a state (a
	-- failure that can count, or a delivery report), summed per address;
	-- no "= ANY (addrs)" on them: an array parameter is searched from its
	-- start for each row
	WITH x AS (
		SELECT n.recipient, min(n.recipient_domain) AS domain,
		    coalesce(bool_and(n.class <> 'delivered'
		        AND NOT EXISTS (SELECT 1 FROM reason_overrides ro
		            WHERE ro.reason = n.reason)), false) AS additive,
		    coalesce(bool_or(n.bounced_at < f.folded_before), false)
		        AS late,
		    count(*) FILTER (WHERE n.class = 'hard') AS hard,
		    count(*) FILTER (WHERE n.class = 'complaint') AS complaints,
		    count(*) FILTER (WHERE n.class = 'soft') AS soft,
		    min(n.bounced_at) AS first_at, max(n.bounced_at) AS last_at,
		    min(n.bounced_at) FILTER (WHERE n.class = 'soft')
		        AS first_soft_at,
		    (array_agg(n.reason ORDER BY n.bounced_at DESC, n.reason)
		        FILTER (WHERE n.class = 'hard'))[1] AS hard_reason,
		    (array_agg(n.reason ORDER BY n.bounced_at DESC, n.reason)
		        FILTER (WHERE n.class = 'complaint'))[1]
		        AS complaint_reason,
		    (array_agg(n.reason ORDER BY n.bounced_at DESC, n.reason)
		        FILTER (WHERE n.class = 'soft'))[1] AS soft_reason
		FROM new_bounces n
		CROSS JOIN suppression_feed f
		WHERE f.id AND n.recipient IS NOT NULL
		    AND (n.class = 'delivered'
		        OR (n.counts AND n.class IN ('hard', 'soft', 'complaint')
		            AND coalesce(n.action, '') <> 'delayed'))
		GROUP BY n.recipient
	)
	SELECT array_agg(x.recipient),
	    array_agg(x.recipient) FILTER (WHERE x.late),
	    array_agg(ROW(x.recipient, x.domain, x.additive AND NOT x.late,
	        x.hard, x.complaints, x.soft, x.first_at, x.last_at,
	        x.first_soft_at, x.hard_reason, x.complaint_reason,
	        x.soft_reason)::suppression_news)
	INTO addrs, late, news
	FROM x;
	IF addrs IS NULL THEN
		RETURN NULL;
	END IF;
	-- a row dated before folded_before: the address's carried groups
	-- are made again first
	IF late IS NOT NULL THEN
		PERFORM suppression_lock(addrs);
		PERFORM suppression_refold(late);
	END IF;
	PERFORM suppression_state_refresh(addrs, 'bounce', news);
	RETURN NULL;
END
$$;

-- The lifts trigger of 015, under the addresses' locks.
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
		PERFORM suppression_lock(addrs);
		PERFORM suppression_refold(late);
	END IF;
	PERFORM suppression_state_refresh(addrs, 'lift');
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION unsuppress(p_address text, p_note text,
    p_lifted_by text DEFAULT current_user)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	cur record;
BEGIN
	IF coalesce(p_note, '') = '' THEN
		RAISE EXCEPTION 'unsuppress needs a note saying why';
	END IF;
	PERFORM suppression_lock(ARRAY[lower(p_address)]);
	SELECT s.suppressed_because, s.reason INTO cur
	FROM suppression_state s
	WHERE s.address = lower(p_address) AND s.suppressed;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	-- the lifts trigger updates suppression_state and the feed
	INSERT INTO suppression_lifts (address, note, lifted_by,
	    was_suppressed_because, was_reason)
	VALUES (lower(p_address), p_note, p_lifted_by,
	    cur.suppressed_because, cur.reason);
	RETURN true;
END
$$;

-- the addresses left suppressed although nothing of theirs counts
DO $$
BEGIN
	PERFORM suppression_state_refresh(
	    array_agg(s.address ORDER BY s.address), 'lift')
	FROM suppression_state s
	WHERE s.suppressed
	    AND EXISTS (SELECT 1 FROM suppression_lifts l
	        WHERE l.address = s.address
	            AND l.lifted_at >= s.last_bounced_at);
END
$$;
