-- 020_webhook_outbox.sql - the events bouncerd tells webhook endpoints
-- about, written in the transaction that records what they describe, so
-- that no crash can lose one (a transactional outbox).
--   * webhook_endpoints: the endpoints of the configuration and the event
--     types each one takes; bouncerd writes it at start.
--   * webhook_outbox: one row per event and endpoint, delivered by
--     bouncerd in id order per endpoint and kept: delivered rows for 7 days
--     (webhook_prune), dead ones (retried for max_age without success)
--     until an operator replays them (webhook_replay) or deletes them.
--   * Triggers on bounces (bounce.recorded, complaint.recorded) and on
--     suppression_changes (suppression.added, .lifted, .expired) insert
--     the rows.  The bounces trigger takes a transaction lock per address
--     (in address order) before any event of the statement gets its id,
--     and the suppression events are numbered under the address's row
--     lock of suppression_state: two writers of one address number its
--     events one after the other, so an endpoint gets an address's events
--     in the order they happened.
--   * NOTIFY bouncerd_webhook (empty payload) wakes the delivery worker.

CREATE TABLE webhook_endpoints (
	name text PRIMARY KEY,
	events text[] NOT NULL,
	enabled boolean NOT NULL DEFAULT true,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE webhook_endpoints IS
    'The webhook endpoints of bouncerd''s configuration (webhooks:), written by bouncerd at start; only enabled endpoints get events.';
COMMENT ON COLUMN webhook_endpoints.name IS 'webhooks[].name.';
COMMENT ON COLUMN webhook_endpoints.events IS 'Event types the endpoint takes (webhooks[].events).';
COMMENT ON COLUMN webhook_endpoints.enabled IS 'False once the endpoint left the configuration: no new events, the queued ones stay.';

CREATE TABLE webhook_outbox (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	endpoint text NOT NULL,
	event_id text NOT NULL,
	type text NOT NULL CHECK (type IN ('suppression.added',
	    'suppression.lifted', 'suppression.expired', 'bounce.recorded',
	    'complaint.recorded')),
	address text,
	payload jsonb NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	queued_at timestamptz NOT NULL DEFAULT now(),
	state text NOT NULL DEFAULT 'pending'
	    CHECK (state IN ('pending', 'delivered', 'dead')),
	attempts integer NOT NULL DEFAULT 0,
	next_attempt_at timestamptz NOT NULL DEFAULT now(),
	last_attempt_at timestamptz,
	last_status integer,
	last_error text,
	done_at timestamptz
);
COMMENT ON TABLE webhook_outbox IS
    'One row per event and webhook endpoint, inserted in the transaction of the bounce or suppression change it describes; bouncerd delivers each endpoint''s pending rows in id order.';
COMMENT ON COLUMN webhook_outbox.endpoint IS 'webhook_endpoints.name.';
COMMENT ON COLUMN webhook_outbox.event_id IS 'The webhook-id header: the same for every attempt and every endpoint of one event (msg_ + 32 hex digits).';
COMMENT ON COLUMN webhook_outbox.type IS 'Event type, also the payload''s "type".';
COMMENT ON COLUMN webhook_outbox.address IS 'The address the event is about.';
COMMENT ON COLUMN webhook_outbox.payload IS 'The Standard Webhooks body: {"type", "timestamp", "data"}; sent as its jsonb text.';
COMMENT ON COLUMN webhook_outbox.created_at IS 'When the event happened (start of its transaction).';
COMMENT ON COLUMN webhook_outbox.queued_at IS 'Start of the current delivery attempts: created_at, or the last webhook_replay(); max_age counts from here.';
COMMENT ON COLUMN webhook_outbox.state IS 'pending, delivered (a 2xx answer) or dead (no 2xx within max_age; see webhook_replay).';
COMMENT ON COLUMN webhook_outbox.attempts IS 'Delivery attempts made.';
COMMENT ON COLUMN webhook_outbox.next_attempt_at IS 'Earliest time of the next attempt (capped exponential backoff with jitter).';
COMMENT ON COLUMN webhook_outbox.last_status IS 'HTTP status of the last attempt; NULL when none came (timeout, connection refused, TLS).';
COMMENT ON COLUMN webhook_outbox.last_error IS 'Why the last attempt failed (never the secret or a header value).';
COMMENT ON COLUMN webhook_outbox.done_at IS 'When the row was delivered or given up.';
CREATE INDEX webhook_outbox_pending_idx ON webhook_outbox (endpoint, id)
    WHERE state = 'pending';
CREATE INDEX webhook_outbox_dead_idx ON webhook_outbox (endpoint, id)
    WHERE state = 'dead';
CREATE INDEX webhook_outbox_done_idx ON webhook_outbox (done_at)
    WHERE state = 'delivered';
CREATE INDEX webhook_outbox_address_idx ON webhook_outbox (address, id);

-- The Standard Webhooks "timestamp" of an event: ISO 8601, UTC.
CREATE FUNCTION webhook_time(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- bounce.recorded (hard and soft) and complaint.recorded, one per row of
-- the statement with a recipient.
CREATE FUNCTION bounces_enqueue_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled) THEN
		RETURN NULL;
	END IF;
	-- the addresses' locks first, in address order (see above)
	PERFORM pg_advisory_xact_lock(hashtextextended(
	    'bouncerd.webhook:' || x.a, 0))
	FROM (SELECT DISTINCT nb.recipient AS a FROM new_bounces nb
	      WHERE nb.recipient IS NOT NULL
	          AND nb.class IN ('hard', 'soft', 'complaint')
	      ORDER BY 1) x;
	WITH ev AS MATERIALIZED (
		SELECT nb.id, nb.recipient,
		    CASE WHEN nb.class = 'complaint' THEN 'complaint.recorded'
		        ELSE 'bounce.recorded' END AS type,
		    'msg_' || replace(gen_random_uuid()::text, '-', '')
		        AS event_id,
		    jsonb_build_object(
		        'address', nb.recipient,
		        'domain', nb.recipient_domain,
		        'class', nb.class,
		        'reason', nb.reason,
		        'status', nb.status,
		        'action', nb.action,
		        'reply_code', nb.reply_code,
		        'diagnostic', left(nb.diagnostic, 1000),
		        'remote_mta', nb.remote_mta,
		        'reporting_mta', nb.reporting_mta,
		        'feedback_type', nb.feedback_type,
		        'campaign_id', nb.campaign_id,
		        'list_id', nb.list_id,
		        'subscriber_id', nb.subscriber_id,
		        'original_message_id', nb.original_message_id,
		        'mailbox', mb.name,
		        'counts', nb.counts,
		        'bounced_at', webhook_time(nb.bounced_at),
		        'bounce_id', nb.id) AS data
		FROM new_bounces nb
		LEFT JOIN messages m ON m.id = nb.message_id
		LEFT JOIN mailboxes mb ON mb.id = m.mailbox_id
		WHERE nb.recipient IS NOT NULL
		    AND nb.class IN ('hard', 'soft', 'complaint')
	)
	INSERT INTO webhook_outbox (endpoint, event_id, type, address, payload)
	SELECT e.name, ev.event_id, ev.type, ev.recipient,
	    jsonb_build_object('type', ev.type,
	        'timestamp', webhook_time(now()), 'data', ev.data)
	FROM ev
	JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.events)
	ORDER BY ev.id, e.name;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM pg_notify('bouncerd_webhook', '');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION bounces_enqueue_webhooks() IS
    'Trigger (once per INSERT statement on bounces): queues bounce.recorded and complaint.recorded for the enabled webhook endpoints that take them.';
-- fires before bounces_notify_suppression (triggers run in name order):
-- a bounce is announced before the suppression it causes
CREATE TRIGGER bounces_enqueue_webhooks AFTER INSERT ON bounces
REFERENCING NEW TABLE AS new_bounces
FOR EACH STATEMENT EXECUTE FUNCTION bounces_enqueue_webhooks();

-- suppression.added, .lifted and .expired, one per change (reason_changed
-- is not an event), with the address's state and its latest counted
-- bounce of that reason (status, campaign, list, mailbox).
CREATE FUNCTION suppression_changes_enqueue_webhooks() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.enabled) THEN
		RETURN NULL;
	END IF;
	WITH ev AS MATERIALIZED (
		SELECT c.id, c.address, 'suppression.' || c.change AS type,
		    c.changed_at,
		    'msg_' || replace(gen_random_uuid()::text, '-', '')
		        AS event_id,
		    jsonb_build_object(
		        'address', c.address,
		        'domain', s.domain,
		        'change_id', c.id,
		        'suppressed_because', c.suppressed_because,
		        'class', c.class,
		        'reason', c.reason,
		        'status', lb.status,
		        'campaign_id', lb.campaign_id,
		        'list_id', lb.list_id,
		        'subscriber_id', lb.subscriber_id,
		        'mailbox', lb.mailbox,
		        'bounce_id', lb.id,
		        'hard_bounces', s.hard_bounces,
		        'complaints', s.complaints,
		        'recent_soft_bounces', s.recent_soft_bounces,
		        'first_bounced_at', webhook_time(s.first_bounced_at),
		        'last_bounced_at', webhook_time(s.last_bounced_at))
		        AS data
		FROM new_changes c
		LEFT JOIN suppression_state s ON s.address = c.address
		LEFT JOIN LATERAL (
			SELECT b.id, b.status, b.campaign_id, b.list_id,
			    b.subscriber_id, mb.name AS mailbox
			FROM bounces b
			JOIN messages m ON m.id = b.message_id
			JOIN mailboxes mb ON mb.id = m.mailbox_id
			WHERE b.recipient = c.address
			    AND b.class IN ('hard', 'soft', 'complaint')
			    AND b.reason = coalesce(c.reason, b.reason)
			ORDER BY b.bounced_at DESC, b.id DESC
			LIMIT 1
		) lb ON true
		WHERE c.change IN ('added', 'lifted', 'expired')
	)
	INSERT INTO webhook_outbox (endpoint, event_id, type, address, payload,
	    created_at)
	SELECT e.name, ev.event_id, ev.type, ev.address,
	    jsonb_build_object('type', ev.type,
	        'timestamp', webhook_time(ev.changed_at), 'data', ev.data),
	    ev.changed_at
	FROM ev
	JOIN webhook_endpoints e ON e.enabled AND ev.type = ANY (e.events)
	ORDER BY ev.id, e.name;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM pg_notify('bouncerd_webhook', '');
	END IF;
	RETURN NULL;
END
$$;
COMMENT ON FUNCTION suppression_changes_enqueue_webhooks() IS
    'Trigger (once per INSERT statement on suppression_changes): queues suppression.added, .lifted and .expired for the enabled webhook endpoints that take them.';
CREATE TRIGGER suppression_changes_enqueue_webhooks
AFTER INSERT ON suppression_changes
REFERENCING NEW TABLE AS new_changes
FOR EACH STATEMENT EXECUTE FUNCTION suppression_changes_enqueue_webhooks();

-- Dead events (or those of one endpoint, or since a time) queued again:
-- delivered next, in id order, with their ids; max_age counts from now.
CREATE FUNCTION webhook_replay(p_endpoint text DEFAULT NULL,
    p_since timestamptz DEFAULT '-infinity')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	UPDATE webhook_outbox SET state = 'pending', attempts = 0,
	    queued_at = now(), next_attempt_at = now(), done_at = NULL
	WHERE state = 'dead'
	    AND (p_endpoint IS NULL OR endpoint = p_endpoint)
	    AND created_at >= p_since;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n > 0 THEN
		PERFORM pg_notify('bouncerd_webhook', '');
	END IF;
	RETURN n;
END
$$;
COMMENT ON FUNCTION webhook_replay(text, timestamptz) IS
    'Queues dead webhook events again (all, or one endpoint''s, created since p_since); returns how many. They keep their webhook-id.';

-- Delivered rows older than keep are deleted (bouncerd calls it hourly).
CREATE FUNCTION webhook_prune(keep interval DEFAULT '7 days')
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	DELETE FROM webhook_outbox
	WHERE state = 'delivered' AND done_at < now() - keep;
	GET DIAGNOSTICS n = ROW_COUNT;
	RETURN n;
END
$$;
COMMENT ON FUNCTION webhook_prune(interval) IS
    'Deletes delivered webhook events older than keep (default 7 days); dead ones stay until replayed or deleted.';
