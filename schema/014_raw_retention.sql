-- 014_raw_retention.sql - raw bytes are dropped retention.raw after the
-- email was fetched (default 30 days), not kept forever: the rows still
-- holding raw bytes, per mailbox and fetch date, so that the trim after
-- each pass reads only the rows it empties.
CREATE INDEX messages_raw_idx ON messages (mailbox_id, fetched_at)
    WHERE raw IS NOT NULL;
COMMENT ON COLUMN messages.raw IS
    'The email exactly as fetched (up to database.raw_max_bytes); NULL when not kept, or once retention.raw has passed since it was fetched (emails that failed keep theirs).';
