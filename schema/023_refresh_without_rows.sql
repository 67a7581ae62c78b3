-- 023_refresh_without_rows.sql - an address whose every row that could
-- count is gone from what the rules read is evaluated as not suppressed.
--   * Once the history before soft_window's month is folded, only rows
--     that can still count are carried; a lift dated after all of them
--     (or a late bounce that cannot count) leaves the rules no row of the
--     address at all.  The evaluation returned nothing for it and its
--     stored state kept the old verdict: still suppressed, the lift not
--     applied, no change in the feed.
--   * Now such an address gets the empty verdict: not suppressed, no
--     counts, its latest lift.
--   * Addresses already left suppressed that way (suppressed, with a lift
--     at or after their latest counted bounce) are evaluated again, and
--     their change is announced as a lift.

CREATE OR REPLACE FUNCTION suppression_state_refresh(addrs text[], cause text)
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
	-- the row locks, in address order (no deadlock between writers);
	-- ON CONFLICT DO UPDATE ... WHERE false locks without writing
	INSERT INTO suppression_state AS t (address)
	SELECT DISTINCT a FROM unnest(addrs) AS a WHERE a IS NOT NULL
	ORDER BY 1
	ON CONFLICT (address) DO UPDATE SET address = EXCLUDED.address
	    WHERE false;
	-- a new snapshot: includes what writers before us committed
	WITH cm AS MATERIALIZED (
		SELECT * FROM suppression_state_compute(addrs)
	), nw AS MATERIALIZED (
		SELECT * FROM cm
		UNION ALL
		-- nothing left that can count: not suppressed
		SELECT e.a, cur.domain, false, NULL, NULL, NULL, 0, 0, 0, NULL,
		    NULL, NULL, (SELECT max(sl.lifted_at) FROM suppression_lifts sl
		        WHERE sl.address = e.a)
		FROM (SELECT DISTINCT a FROM unnest(addrs) AS a
		    WHERE a IS NOT NULL) e
		JOIN suppression_state cur ON cur.address = e.a
		WHERE NOT EXISTS (SELECT 1 FROM cm WHERE cm.address = e.a)
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
COMMENT ON FUNCTION suppression_state_refresh(text[], text) IS
    'Evaluates the suppression rules for these addresses under their row locks (an address with no row the rules can read is not suppressed), stores the result, appends the changes to suppression_changes and sends NOTIFY bouncerd_suppression for each. Returns the number of changes.';

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
