-- 007_statement_notify.sql - the suppression NOTIFY runs once per INSERT
-- statement instead of once per bounce row: bouncerd records a whole batch
-- with one INSERT, and the addresses of all its rows are looked up with
-- one evaluation of the counting rules instead of one per row (the
-- per-row trigger halved the recording rate).  Same rules, same channel,
-- same payload as in 002/004: an address is announced when a row puts it
-- on the list that it was not on before that row.
--   * An address with a single row in the statement (the common case) is
--     checked as before: suppressed with the statement's rows, and not
--     suppressed by the rows before it (skipped when it has no earlier
--     failure row at all).
--   * An address with several rows in the statement is checked row by
--     row in id order, as the per-row trigger did.

CREATE FUNCTION bounces_notify_suppression_stmt() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	c record;
	r record;
	now_s record;
	was boolean;
	earlier boolean;
	single text[];
	upto bigint;
BEGIN
	-- addresses with exactly one row in the statement, that row counting
	SELECT array_agg(n.recipient), max(n.id) INTO single, upto
	FROM (
		SELECT n.recipient, max(n.id) AS id
		FROM new_bounces n
		WHERE n.recipient IS NOT NULL
		GROUP BY n.recipient
		HAVING count(*) = 1
		    AND bool_and(n.counts
		        AND n.class IN ('hard', 'soft', 'complaint')
		        AND coalesce(n.action, '') <> 'delayed')
	) n;
	IF single IS NOT NULL THEN
		-- EXECUTE: planned for these addresses and the table as it is
		-- now; a generic plan made while the table was still small
		-- reads all of it on every statement
		FOR c IN EXECUTE
			'SELECT n.id, n.recipient, s.reason, s.class,'
			'    s.suppressed_because'
			' FROM suppression_status($2) s'
			' JOIN new_bounces n ON n.recipient = s.address'
			' WHERE s.address = ANY ($1) AND s.suppressed'
			' ORDER BY n.id'
			USING single, upto
		LOOP
			was := false;
			-- EXECUTE: planned for the table as it is now (a plan
			-- kept from when it was empty scans all of it)
			EXECUTE 'SELECT EXISTS (SELECT 1 FROM bounces b'
			    ' WHERE b.recipient = $1 AND b.id < $2'
			    ' AND b.class IN (''hard'', ''soft'', ''complaint''))'
			    INTO earlier USING c.recipient, c.id;
			IF earlier THEN
				SELECT s.suppressed INTO was
				FROM suppression_status(c.id - 1) s
				WHERE s.address = c.recipient;
			END IF;
			IF NOT coalesce(was, false) THEN
				PERFORM pg_notify('bouncerd_suppression',
				    json_build_object('address', c.recipient,
				    'reason', c.reason, 'class', c.class,
				    'suppressed_because',
				    c.suppressed_because)::text);
			END IF;
		END LOOP;
	END IF;
	-- addresses with several rows in the statement: row by row
	FOR r IN
		SELECT n.id, n.recipient
		FROM new_bounces n
		WHERE n.recipient IN (
			SELECT m.recipient FROM new_bounces m
			WHERE m.recipient IS NOT NULL
			GROUP BY m.recipient HAVING count(*) > 1)
		    AND n.counts AND n.class IN ('hard', 'soft', 'complaint')
		    AND coalesce(n.action, '') <> 'delayed'
		ORDER BY n.id
	LOOP
		was := false;
		IF EXISTS (SELECT 1 FROM bounces b WHERE b.recipient = r.recipient
		    AND b.id < r.id AND b.class IN ('hard', 'soft', 'complaint'))
		THEN
			SELECT s.suppressed INTO was
			FROM suppression_status(r.id - 1) s
			WHERE s.address = r.recipient;
			IF coalesce(was, false) THEN
				CONTINUE;
			END IF;
		END IF;
		SELECT s.suppressed, s.reason, s.class, s.suppressed_because
		INTO now_s
		FROM suppression_status(r.id) s WHERE s.address = r.recipient;
		IF NOT FOUND OR NOT now_s.suppressed THEN
			CONTINUE;
		END IF;
		PERFORM pg_notify('bouncerd_suppression', json_build_object(
		    'address', r.recipient, 'reason', now_s.reason,
		    'class', now_s.class,
		    'suppressed_because', now_s.suppressed_because)::text);
	END LOOP;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION bounces_notify_suppression_stmt() IS
    'Trigger (once per INSERT statement): NOTIFY bouncerd_suppression with {"address", "reason", "class", "suppressed_because"} for each address that a new bounce row put on the suppression list.';
-- the queries look up a few addresses each through the index: a generic
-- plan, made once per session, is right for them (see 005)
ALTER FUNCTION bounces_notify_suppression_stmt()
    SET plan_cache_mode = force_generic_plan;

DROP TRIGGER bounces_notify_suppression ON bounces;
DROP FUNCTION bounces_notify_suppression();
CREATE TRIGGER bounces_notify_suppression AFTER INSERT ON bounces
REFERENCING NEW TABLE AS new_bounces
FOR EACH STATEMENT EXECUTE FUNCTION bounces_notify_suppression_stmt();
