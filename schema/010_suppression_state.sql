-- 010_suppression_state.sql - the suppression list stored instead of
-- recomputed: one row per address in suppression_state, kept up to date in
-- the transaction that records its bounces (under that row's lock), and an
-- append-only change feed (suppression_changes) whose id a platform keeps
-- as its sync cursor.  The suppressions view reads the table: an export or
-- a one-address lookup no longer evaluates the rules over every bounce.
--   * The rules are those of 003/006 (bounce_counting, suppression_status),
--     evaluated for the addresses of one statement only by
--     suppression_state_compute(); a randomised test compares the stored
--     state with suppression_status(NULL) over thousands of histories.
--   * Soft bounces leave soft_window as time passes: soft_expires_at says
--     when the address must be evaluated again, and
--     suppression_state_expire(), called by bouncerd on a timer, does it.
--   * A change of settings or overrides re-evaluates every address
--     (suppression_rules_sync(), called by bouncerd when it writes them).
--   * Concurrent writers lock the rows of their addresses in address order
--     before evaluating, so the second one sees the first one's bounces:
--     each change is announced exactly once (NOTIFY at COMMIT, with the
--     change's id).  Change ids come from one counter row, locked until
--     COMMIT, so they become visible in id order and "id > cursor" never
--     skips a change committed late.

CREATE TABLE suppression_state (
	address text PRIMARY KEY,
	domain text,
	suppressed boolean NOT NULL DEFAULT false,
	suppressed_because text,
	reason text,
	class text,
	hard_bounces bigint NOT NULL DEFAULT 0,
	complaints bigint NOT NULL DEFAULT 0,
	recent_soft_bounces bigint NOT NULL DEFAULT 0,
	first_bounced_at timestamptz,
	last_bounced_at timestamptz,
	suppressed_since timestamptz,
	lifted_at timestamptz,
	soft_expires_at timestamptz,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE suppression_state IS
    'The suppression rules evaluated per address and stored: one row per address with a bounce that can count, updated in the transaction that records its bounces, by unsuppress(), by bouncerd when soft bounces leave the window, and when the settings change. The suppressions view reads the suppressed rows.';
COMMENT ON COLUMN suppression_state.address IS 'The address (lower-case).';
COMMENT ON COLUMN suppression_state.domain IS 'Its domain.';
COMMENT ON COLUMN suppression_state.suppressed IS 'True when the address is on the suppression list.';
COMMENT ON COLUMN suppression_state.suppressed_because IS 'complaint, hard_bounce, reason_override or soft_bounces while suppressed; NULL otherwise.';
COMMENT ON COLUMN suppression_state.reason IS 'Reason of the latest bounce behind suppressed_because; NULL when not suppressed.';
COMMENT ON COLUMN suppression_state.class IS 'complaint, hard or soft while suppressed; NULL otherwise.';
COMMENT ON COLUMN suppression_state.hard_bounces IS 'Counted hard bounces (all time, after the latest lift).';
COMMENT ON COLUMN suppression_state.complaints IS 'Counted complaints (all time, after the latest lift).';
COMMENT ON COLUMN suppression_state.recent_soft_bounces IS 'Counted soft bounces within soft_window when the row was last evaluated.';
COMMENT ON COLUMN suppression_state.first_bounced_at IS 'Date of the first counted bounce.';
COMMENT ON COLUMN suppression_state.last_bounced_at IS 'Date of the latest counted bounce.';
COMMENT ON COLUMN suppression_state.suppressed_since IS 'When the address last entered the list; NULL when not suppressed.';
COMMENT ON COLUMN suppression_state.lifted_at IS 'When the address was last lifted with unsuppress(); NULL if never.';
COMMENT ON COLUMN suppression_state.soft_expires_at IS 'When the oldest counted soft bounce leaves soft_window, so the row must be evaluated again; NULL when none.';
COMMENT ON COLUMN suppression_state.updated_at IS 'When the row last changed.';
CREATE INDEX suppression_state_suppressed_idx ON suppression_state
    (last_bounced_at DESC, address) WHERE suppressed;
CREATE INDEX suppression_state_domain_idx ON suppression_state (domain)
    WHERE suppressed;
CREATE INDEX suppression_state_expiry_idx ON suppression_state
    (soft_expires_at) WHERE soft_expires_at IS NOT NULL;

CREATE TABLE suppression_changes (
	id bigint PRIMARY KEY,
	address text NOT NULL,
	change text NOT NULL
	    CHECK (change IN ('added', 'lifted', 'expired', 'reason_changed')),
	suppressed_because text,
	reason text,
	class text,
	changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE suppression_changes IS
    'Append-only feed of changes to the suppression list, in commit order: keep the largest id you have read and ask for id > it.';
COMMENT ON COLUMN suppression_changes.id IS
    'Increasing change number; a change with a larger id never becomes visible before one with a smaller id.';
COMMENT ON COLUMN suppression_changes.address IS 'The address (lower-case).';
COMMENT ON COLUMN suppression_changes.change IS
    'added: entered the list; lifted: removed by unsuppress(); expired: left the list by the rules (its soft bounces left the window, a delivery report cleared them, or the settings changed); reason_changed: still on the list for another rule or reason.';
COMMENT ON COLUMN suppression_changes.suppressed_because IS
    'suppressed_because after the change (added, reason_changed) or before it (lifted, expired).';
COMMENT ON COLUMN suppression_changes.reason IS 'reason, likewise.';
COMMENT ON COLUMN suppression_changes.class IS 'class, likewise.';
COMMENT ON COLUMN suppression_changes.changed_at IS 'When the change was made (start of its transaction).';
CREATE INDEX suppression_changes_address_idx ON suppression_changes
    (address, id);

CREATE TABLE suppression_feed (
	id boolean PRIMARY KEY DEFAULT true CHECK (id),
	last_change_id bigint NOT NULL DEFAULT 0,
	rules text
);
INSERT INTO suppression_feed DEFAULT VALUES;
COMMENT ON TABLE suppression_feed IS
    'One row: the last change id handed out (locked until COMMIT by the transaction that takes ids, so ids become visible in order) and the settings and overrides suppression_state was last evaluated with.';
COMMENT ON COLUMN suppression_feed.id IS 'Always true: the table has exactly one row.';
COMMENT ON COLUMN suppression_feed.last_change_id IS 'Largest suppression_changes.id handed out.';
COMMENT ON COLUMN suppression_feed.rules IS 'settings and reason_overrides as text when suppression_state was last evaluated in full.';

-- The rules of bounce_counting() and suppression_status() (003/006) for
-- the addresses in addrs only, read through bounces_recipient_idx, plus
-- when the oldest counted soft bounce leaves the window and the latest
-- lift.  Keep it in step with them (the equivalence test compares them).
CREATE FUNCTION suppression_state_compute(addrs text[])
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
), r AS (
	SELECT b.recipient, b.recipient_domain, b.class, b.reason,
	    b.action, b.bounced_at, b.counts,
	    max(b.bounced_at) FILTER (WHERE b.class = 'delivered')
	        OVER (PARTITION BY b.recipient) AS last_delivered_at,
	    l.lifted_at,
	    o.action AS override
	FROM bounces b
	LEFT JOIN l ON l.address = b.recipient
	LEFT JOIN reason_overrides o ON o.reason = b.reason
	WHERE b.recipient = ANY (addrs)
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
	    w.bounced_at, w.lifted_at,
	    CASE WHEN w.why_not IS NOT NULL THEN NULL
	        WHEN w.class = 'soft' AND w.override = 'hard_after'
	            THEN 'override'
	        ELSE w.class END AS counted_as
	FROM w
), g AS (
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
	        AS last_bounced_at,
	    min(c.bounced_at) FILTER (WHERE c.counted_as = 'soft')
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
		HAVING count(*) >= ro.count
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
    'The suppression rules (as in suppression_status) for the given addresses only, with when each must be evaluated again.';

-- Evaluates the rules for addrs and stores the result: locks their rows
-- (creating them) in address order, evaluates with a snapshot taken after
-- the locks, writes what changed, appends the changes to the feed and
-- announces each one.  cause: 'bounce', 'lift', 'expire' or 'settings'
-- (a removal by a lift is "lifted", any other "expired"), or 'initial'
-- (the first evaluation of a database's history: the state is written,
-- the feed starts after it).  Returns the number of changes.
-- Planned once per session (generic plans) for a few addresses: the
-- joins are nested loops over the primary keys, never a hash of a whole
-- table (a generic plan cannot know how few addresses there are).
CREATE FUNCTION suppression_state_refresh(addrs text[], cause text)
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
	WITH nw AS MATERIALIZED (
		SELECT * FROM suppression_state_compute(addrs)
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
    'Evaluates the suppression rules for these addresses under their row locks, stores the result, appends the changes to suppression_changes and sends NOTIFY bouncerd_suppression for each. Returns the number of changes.';

-- The bounces trigger: the addresses of the statement's rows that can
-- change a state (a failure that can count, or a delivery report).
CREATE OR REPLACE FUNCTION bounces_notify_suppression_stmt() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
	addrs text[];
BEGIN
	SELECT array_agg(DISTINCT n.recipient) INTO addrs
	FROM new_bounces n
	WHERE n.recipient IS NOT NULL
	    AND (n.class = 'delivered'
	        OR (n.counts AND n.class IN ('hard', 'soft', 'complaint')
	            AND coalesce(n.action, '') <> 'delayed'));
	PERFORM suppression_state_refresh(addrs, 'bounce');
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION bounces_notify_suppression_stmt() IS
    'Trigger (once per INSERT statement): updates suppression_state for the addresses of the new bounce rows; each change is appended to suppression_changes and announced with NOTIFY bouncerd_suppression.';

-- A lift re-evaluates its address (whoever inserts it).
CREATE FUNCTION suppression_lifts_refresh() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM suppression_state_refresh(
	    (SELECT array_agg(DISTINCT n.address) FROM new_lifts n), 'lift');
	RETURN NULL;
END
$$;
CREATE TRIGGER suppression_lifts_refresh AFTER INSERT ON suppression_lifts
REFERENCING NEW TABLE AS new_lifts
FOR EACH STATEMENT EXECUTE FUNCTION suppression_lifts_refresh();

-- Up to max_addresses addresses whose soft bounces have left the window
-- since they were last evaluated, evaluated again (oldest first).
-- Returns the number of addresses evaluated; call again while it returns
-- max_addresses.
CREATE FUNCTION suppression_state_expire(max_addresses integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
	addrs text[];
BEGIN
	SELECT array_agg(x.address) INTO addrs
	FROM (
		SELECT s.address FROM suppression_state s
		WHERE s.soft_expires_at <= now()
		ORDER BY s.soft_expires_at
		LIMIT max_addresses
	) x;
	PERFORM suppression_state_refresh(addrs, 'expire');
	RETURN coalesce(cardinality(addrs), 0);
END
$$;
COMMENT ON FUNCTION suppression_state_expire(integer) IS
    'Re-evaluates up to max_addresses addresses whose oldest counted soft bounce has left soft_window (bouncerd calls it on a timer). Returns how many it evaluated.';

-- When settings or reason_overrides differ from those the state was
-- evaluated with, every address is evaluated again (in chunks of 5,000,
-- under an EXCLUSIVE lock so that writers wait).  Returns the number of
-- addresses evaluated (0: nothing changed).
CREATE FUNCTION suppression_rules_sync() RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	cur text;
	done text;
	cause text := 'settings';
	chunk text[];
	last text := '';
	total bigint := 0;
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
	LOCK TABLE suppression_state IN EXCLUSIVE MODE;
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
COMMENT ON FUNCTION suppression_rules_sync() IS
    'Re-evaluates every address when settings or reason_overrides changed since suppression_state was last evaluated in full (bouncerd calls it after writing them). Returns how many addresses it evaluated.';

CREATE OR REPLACE VIEW suppressions AS
SELECT address, domain, suppressed_because, reason, class, hard_bounces,
    complaints, recent_soft_bounces, first_bounced_at, last_bounced_at
FROM suppression_state
WHERE suppressed;
COMMENT ON COLUMN suppressions.recent_soft_bounces IS
    'Counted soft bounces within soft_window, after the latest delivery report (as of the address''s latest evaluation: bouncerd re-evaluates an address when one of its soft bounces leaves the window).';

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
	SELECT s.suppressed_because, s.reason INTO cur
	FROM suppression_state s
	WHERE s.address = lower(p_address) AND s.suppressed
	FOR UPDATE;
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

-- the state of the bounces already recorded
DO $$ BEGIN PERFORM suppression_rules_sync(); END $$;
