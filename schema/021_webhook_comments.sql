-- 021_webhook_comments.sql - the columns of 020 that had no comment.
COMMENT ON COLUMN webhook_endpoints.updated_at IS 'When bouncerd last changed the row (events or enabled).';
COMMENT ON COLUMN webhook_outbox.id IS 'Delivery order within an endpoint: rows are sent in increasing id.';
COMMENT ON COLUMN webhook_outbox.last_attempt_at IS 'When the last delivery attempt ended; NULL before the first.';
