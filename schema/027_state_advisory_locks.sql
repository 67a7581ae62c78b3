-- 027_state_advisory_locks.sql - writers of the suppression state
-- serialise per address with transaction advisory locks instead of row
-- locks on suppression_state.
--   * A row lock writes the row (its locker is recorded in the tuple), so
--     locking a batch's 50 addresses before evaluating them dirtied up to
--     50 random pages of a two-million-row table, and wrote WAL for each:
--     1.5 ms a batch at ten million bounce rows, 0.3 ms in an empty
--     database.  An advisory lock lives in memory only.
--   * suppression_lock(addrs) takes them in the order of their keys (a
--     64-bit hash of the address), so that two writers never wait on each
--     other in a circle, then makes the state rows of new addresses.
--     Every writer of suppression_state takes them first: recording (the
--     bounces trigger), lifts (the lifts trigger and unsuppress), expiry
--     and the re-evaluation after a change of settings (both through
--     suppression_state_refresh).  Folding history and the re-evaluation
--     after a change of settings still lock the whole table.
--   * As with the row locks, the statements after the locks see what the
--     writers before committed, so each change is announced exactly once.

CREATE FUNCTION suppression_lock(addrs text[])
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(x.k)
	FROM (SELECT DISTINCT hashtextextended('bouncerd.suppression:' || a, 0)
	        AS k
	    FROM unnest(addrs) AS a WHERE a IS NOT NULL ORDER BY 1) x;
	INSERT INTO suppression_state AS t (address)
	SELECT DISTINCT a FROM unnest(addrs) AS a WHERE a IS NOT NULL
	ORDER BY 1
	ON CONFLICT (address) DO NOTHING;
END
$$;
COMMENT ON FUNCTION suppression_lock(text[]) IS
    'Takes the transaction advisory lock of each address (in key order; every writer of suppression_state takes them first) and makes the state rows of addresses that have none. Held until COMMIT.';

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
		FROM (SELECT DISTINCT a FROM unnest(addrs) AS a
		    WHERE a IS NOT NULL) e
		JOIN suppression_state cur ON cur.address = e.a
		WHERE NOT EXISTS (SELECT 1 FROM cm WHERE cm.address = e.a)
		    AND NOT EXISTS (SELECT 1 FROM fx WHERE fx.address = e.a)
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
	SELECT array_agg(DISTINCT n.recipient) INTO addrs
	FROM new_bounces n
	WHERE n.recipient IS NOT NULL
	    AND (n.class = 'delivered'
	        OR (n.counts AND n.class IN ('hard', 'soft', 'complaint')
	            AND coalesce(n.action, '') <> 'delayed'));
	IF addrs IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT array_agg(DISTINCT n.recipient) INTO late
	FROM new_bounces n, suppression_feed f
	WHERE f.id AND n.bounced_at < f.folded_before
	    AND n.recipient = ANY (addrs);
	IF late IS NOT NULL THEN
		PERFORM suppression_lock(addrs);
		PERFORM suppression_refold(late);
	END IF;
	SELECT array_agg(ROW(x.recipient, x.domain,
	    x.additive AND NOT x.recipient = ANY (coalesce(late, '{}')),
	    x.hard, x.complaints, x.soft, x.first_at, x.last_at,
	    x.first_soft_at, x.hard_reason, x.complaint_reason,
	    x.soft_reason)::suppression_news)
	INTO news
	FROM (
		SELECT n.recipient, min(n.recipient_domain) AS domain,
		    coalesce(bool_and(n.class <> 'delivered'
		        AND NOT EXISTS (SELECT 1 FROM reason_overrides ro
		            WHERE ro.reason = n.reason)), false) AS additive,
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
		WHERE n.recipient = ANY (addrs)
		    AND (n.class = 'delivered'
		        OR (n.counts AND n.class IN ('hard', 'soft', 'complaint')
		            AND coalesce(n.action, '') <> 'delayed'))
		GROUP BY n.recipient
	) x;
	PERFORM suppression_state_refresh(addrs, 'bounce', news);
	RETURN NULL;
END
$$;

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
