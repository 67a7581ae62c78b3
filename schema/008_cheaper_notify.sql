-- 008_cheaper_notify.sql - the suppression NOTIFY trigger no longer
-- dominates recording: a 50-row INSERT into 12,000 bounce rows took 7-26 ms
-- with it against 1-1.5 ms without it, and now takes 2.5-3 ms (bench_store,
-- batches of 50: 1,768 records/s with the trigger, now 11,700, against
-- 10,900-14,700 without it).  Most of the time was planning: 007 planned the
-- counting rules (a large query) on every statement with EXECUTE, plus one
-- EXECUTE per address.  Same rules, same channel, same payload, and the
-- same notifications in the same order as in 007: first the addresses
-- with a single row in the statement, checked against all the statement's
-- rows, then the rows of addresses with several rows, one by one; each in
-- id order, announced when that address was not suppressed by the rows
-- before that row.
--   * One static query, planned once per session, instead of the EXECUTEs.
--     It evaluates the rules for each address through a lateral subquery,
--     so that the address reaches every part of suppression_status() and
--     only its rows are read through bounces_recipient_idx (an
--     "address = ANY (...)" filter did not reach the hard_after pass, which
--     read the whole table whenever such an override was configured).
--   * enable_seqscan = off keeps that plan on the index however small the
--     table was when it was made: a generic plan made while the table was
--     empty scanned all of it on every statement, which is why 007 used
--     EXECUTE.  jit = off: the cost of the scans it cannot avoid (of
--     reason_overrides by action, which has no index) would otherwise make
--     each run JIT-compile the query, which takes seconds.
--   * An address can only be on the list if its rows so far that can count
--     (counts true, not delayed) include a hard bounce or a complaint, or
--     least(soft_threshold, the smallest hard_after count) soft bounces.
--     Rows of addresses below that (a first soft bounce, the usual case) are
--     skipped without evaluating the rules, and so is "was it suppressed
--     before" (007 skipped it only without any earlier failure row).  This
--     restates a consequence of the rules in 003/006: a migration that
--     changes the rules must keep it true or change it here.
--   * "Was it suppressed before this row" is evaluated first, and "is it
--     now" only when it was not: a bounce of an address already on the
--     list costs one evaluation of the rules instead of two.
-- All of it runs as one query, so it sees one snapshot of the table (007's
-- queries each took their own).

CREATE OR REPLACE FUNCTION bounces_notify_suppression_stmt() RETURNS trigger
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
	c record;
BEGIN
	FOR c IN
		-- the statement's rows with an address: how many rows that
		-- address has in the statement, and whether the row can count
		WITH n AS (
			SELECT n.id, n.recipient,
			    count(*) OVER (PARTITION BY n.recipient) AS rows_here,
			    n.counts AND n.class IN ('hard', 'soft', 'complaint')
			        AND coalesce(n.action, '') <> 'delayed' AS counting
			FROM new_bounces n
			WHERE n.recipient IS NOT NULL
		-- the rows to check: single-row addresses against all the
		-- single-row addresses' rows (up to the last of them), the
		-- others row by row (up to that row)
		), x AS (
			SELECT n.id, n.recipient, n.rows_here = 1 AS single,
			    CASE WHEN n.rows_here = 1
			        THEN max(n.id) FILTER (WHERE n.rows_here = 1) OVER ()
			        ELSE n.id END AS upto
			FROM n
			WHERE n.counting
		)
		SELECT y.recipient, s.reason, s.class, s.suppressed_because
		FROM (
			-- rows whose address may be on the list now, and whether
			-- it was before the row (OFFSET 0: decided here, before
			-- the rules are evaluated for the address below)
			SELECT x.id, x.recipient, x.single, x.upto,
			    CASE WHEN h.hard_before
			        OR h.soft_before >= k.soft_needed
			    THEN coalesce((SELECT p.suppressed
			        FROM suppression_status(x.id - 1) p
			        WHERE p.address = x.recipient), false)
			    ELSE false END AS was
			FROM x
			CROSS JOIN (
				SELECT least(st.soft_threshold, (SELECT min(o.count)
				    FROM reason_overrides o
				    WHERE o.action = 'hard_after')) AS soft_needed
				FROM settings st WHERE st.id
			) k
			CROSS JOIN LATERAL (
				SELECT bool_or(b.class <> 'soft') AS hard_upto,
				    count(*) FILTER (WHERE b.class = 'soft')
				        AS soft_upto,
				    bool_or(b.class <> 'soft')
				        FILTER (WHERE b.id < x.id) AS hard_before,
				    count(*) FILTER (WHERE b.class = 'soft'
				        AND b.id < x.id) AS soft_before
				FROM bounces b
				WHERE b.recipient = x.recipient AND b.id <= x.upto
				    AND b.class IN ('hard', 'soft', 'complaint')
				    AND b.counts AND coalesce(b.action, '') <> 'delayed'
			) h
			WHERE h.hard_upto OR h.soft_upto >= k.soft_needed
			OFFSET 0
		) y
		CROSS JOIN LATERAL (
			-- the rules for this one address (OFFSET 0 keeps the
			-- address filter inside suppression_status())
			SELECT t.suppressed, t.reason, t.class,
			    t.suppressed_because
			FROM suppression_status(y.upto) t
			WHERE t.address = y.recipient
			OFFSET 0
		) s
		WHERE NOT y.was AND s.suppressed
		ORDER BY NOT y.single, y.id
	LOOP
		PERFORM pg_notify('bouncerd_suppression', json_build_object(
		    'address', c.recipient, 'reason', c.reason, 'class', c.class,
		    'suppressed_because', c.suppressed_because)::text);
	END LOOP;
	RETURN NULL;
END
$$;
