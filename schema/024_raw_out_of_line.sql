-- 024_raw_out_of_line.sql - a message's raw bytes are compressed with
-- LZ4 and kept out of the ledger row, so that writing a ledger row costs
-- what its few columns cost.
--   * The ledger row of a message is written three times: the mark of
--     the attempt, the record, the deletion after QUIT.  With the raw
--     bytes compressed inside the row (PostgreSQL's default for a row
--     under 2 kB once compressed), each new version of the row copied
--     them: 10,000 deletions after a pass wrote 16 MB of WAL.
--   * toast_tuple_target = 128 moves any raw bytes out of the row into
--     the table's TOAST storage, which a new version of the row points
--     to without copying.
--   * LZ4 compresses several times faster than PostgreSQL's own method;
--     a server built without LZ4 keeps its default.
ALTER TABLE messages SET (toast_tuple_target = 128);
DO $$
BEGIN
	EXECUTE 'ALTER TABLE messages ALTER COLUMN raw SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
	RAISE NOTICE 'messages.raw keeps the default compression: %', SQLERRM;
END
$$;
