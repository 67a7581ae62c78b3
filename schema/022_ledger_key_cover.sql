-- 022_ledger_key_cover.sql - the ledger filter of a pass (the state of
-- every UIDL the server lists, up to 100,000 of them in one statement)
-- reads the ledger's key only: the unique key (mailbox_id, uidl) carries
-- the columns the filter returns (outcome, fetched_at, deleted_at,
-- failures), so that a known UIDL costs no table page (an index-only
-- scan) instead of one random table page each.
--   * Same key and same constraint name as before: ON CONFLICT
--     (mailbox_id, uidl) finds it as it did.
--   * outcome, deleted_at and fetched_at were already in other indexes,
--     so their updates were not HOT before either; what is new is that
--     a failure counted on a message that stays 'failed' (failures alone
--     changing) is no longer a HOT update: a rare write.
--   * The index is built once, under a lock that holds off recording
--     (13 s at ten million ledger rows on a 2-core machine).
CREATE UNIQUE INDEX messages_key_cover ON messages (mailbox_id, uidl)
    INCLUDE (outcome, fetched_at, deleted_at, failures);
ALTER TABLE messages DROP CONSTRAINT messages_mailbox_id_uidl_key;
ALTER TABLE messages ADD CONSTRAINT messages_mailbox_id_uidl_key
    UNIQUE USING INDEX messages_key_cover;
