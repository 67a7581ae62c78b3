-- 011_pass_indexes_and_failures.sql - a pass costs what is on the server,
-- not what the mailbox ever held, and a failure is counted once.
--   * messages_on_server_idx: the ledger rows still on the server, per
--     mailbox.  prune_gone (after every pass in keep mode) reads only
--     these instead of every row the mailbox ever had.
--   * failure_attempt: the store gives each report of a failure (one per
--     message and pass) its own token; a retry of the same report after
--     a lost COMMIT reply finds its token already there and does not
--     count the failure again.
CREATE INDEX messages_on_server_idx ON messages (mailbox_id, uidl)
    WHERE deleted_at IS NULL;

ALTER TABLE messages ADD COLUMN failure_attempt text;
COMMENT ON COLUMN messages.failure_attempt IS
    'Token of the latest failure report counted in failures (one per message and pass), so that a report retried after a lost connection is not counted twice.';
