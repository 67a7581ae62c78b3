-- 004_notify_fast_path.sql - the suppression NOTIFY trigger skips the
-- "was it suppressed before this row" evaluation when the address has no
-- earlier failure row at all (the common case: a new address), which
-- halves its cost.  Same rules, same payload as in 002.
CREATE OR REPLACE FUNCTION bounces_notify_suppression() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	now_s record;
	was boolean := false;
BEGIN
	IF NEW.recipient IS NULL OR NOT NEW.counts
	    OR NEW.class NOT IN ('hard', 'soft', 'complaint')
	    OR coalesce(NEW.action, '') = 'delayed' THEN
		RETURN NULL;
	END IF;
	IF EXISTS (SELECT 1 FROM bounces b WHERE b.recipient = NEW.recipient
	    AND b.id < NEW.id AND b.class IN ('hard', 'soft', 'complaint')) THEN
		SELECT s.suppressed INTO was
		FROM suppression_status(NEW.id - 1) s
		WHERE s.address = NEW.recipient;
		IF coalesce(was, false) THEN
			RETURN NULL;
		END IF;
	END IF;
	SELECT s.suppressed, s.reason, s.class, s.suppressed_because
	INTO now_s
	FROM suppression_status(NEW.id) s WHERE s.address = NEW.recipient;
	IF NOT FOUND OR NOT now_s.suppressed THEN
		RETURN NULL;
	END IF;
	PERFORM pg_notify('bouncerd_suppression', json_build_object(
	    'address', NEW.recipient, 'reason', now_s.reason,
	    'class', now_s.class,
	    'suppressed_because', now_s.suppressed_because)::text);
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION bounces_notify_suppression() IS
    'Trigger: NOTIFY bouncerd_suppression with {"address", "reason", "class", "suppressed_because"} when a new bounce row puts its address on the suppression list.';
