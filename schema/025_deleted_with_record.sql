-- 025_deleted_with_record.sql - in delete mode a message's ledger row is
-- marked deleted when its record is written, instead of by a second
-- write after QUIT.
--   * The DELE of a message follows the COMMIT of its record at once,
--     and QUIT makes it final a few seconds later.  Marking every row
--     again after QUIT cost a pass as much as a third of its recording
--     (10,000 rows: 0.3 to 0.9 s on 2 cores), at its very end.
--   * When no QUIT confirms the DELEs (the session broke, the process
--     ended), bouncerd clears the marks at the end of the pass, and the
--     next pass clears those the server still lists before it DELEs them
--     again.
--   * mailboxes.listed_at is when a pass last read the server's whole
--     list and cleared the marks of what it still lists: a row marked
--     deleted before then is gone for sure.  Ledger retention removes
--     only such rows, so a mark that no QUIT confirmed never lets a
--     message be processed twice.
ALTER TABLE mailboxes ADD COLUMN listed_at timestamptz;
COMMENT ON COLUMN mailboxes.listed_at IS
    'When a pass last read the server''s whole list of messages (ledger rows marked deleted before then are gone from the server).';
COMMENT ON COLUMN messages.deleted_at IS
    'When the email was deleted from (or found gone on) the POP3 server; NULL while it is still there. In delete mode it is set with the record, just before the DELE, and cleared again when no QUIT confirms the DELE.';

CREATE OR REPLACE FUNCTION ledger_expire(keep interval,
    max_rows integer DEFAULT 10000)
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
		    AND x.deleted_at < (SELECT mb.listed_at FROM mailboxes mb
		        WHERE mb.id = x.mailbox_id)
		ORDER BY x.deleted_at
		LIMIT max_rows);
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION ledger_expire(interval, integer) IS
    'retention.ledger: removes up to max_rows ledger rows of recorded bounces deleted from the server more than keep ago, and before a pass last read the whole list of their mailbox (a message of such a UIDL would be processed again if the server listed it again). Returns how many it removed.';
