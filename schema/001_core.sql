-- 001_core.sql - the ledger (mailboxes, messages), the per-recipient bounce
-- records, the one-row settings table the suppression rules read, and the
-- indexes analysts and bouncerd query by.  Applied by bouncerd (store.c) in
-- one transaction and recorded in schema_migrations.

CREATE TABLE settings (
	id boolean PRIMARY KEY DEFAULT true CHECK (id),
	soft_threshold integer NOT NULL DEFAULT 3 CHECK (soft_threshold >= 1),
	soft_window interval NOT NULL DEFAULT '30 days'
	    CHECK (soft_window > interval '0'),
	updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings DEFAULT VALUES;
COMMENT ON TABLE settings IS
    'Suppression settings (one row), copied from the suppression section of bouncerd''s YAML config each time bouncerd starts or reloads. The suppressions view reads them.';
COMMENT ON COLUMN settings.id IS 'Always true: the table has exactly one row.';
COMMENT ON COLUMN settings.soft_threshold IS
    'Soft bounces within soft_window that put an address on the suppression list (suppression.soft_threshold).';
COMMENT ON COLUMN settings.soft_window IS
    'How far back soft bounces are counted, by bounce date (suppression.soft_window).';
COMMENT ON COLUMN settings.updated_at IS 'When bouncerd last wrote these settings.';

CREATE TABLE mailboxes (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name text NOT NULL UNIQUE,
	host text,
	username text,
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailboxes IS 'Bounce mailboxes bouncerd polls, one row per mailbox name in the config.';
COMMENT ON COLUMN mailboxes.id IS 'Internal number of the mailbox.';
COMMENT ON COLUMN mailboxes.name IS 'The mailbox name from the config (mailboxes[].name).';
COMMENT ON COLUMN mailboxes.host IS 'POP3 server host name.';
COMMENT ON COLUMN mailboxes.username IS 'POP3 login name.';
COMMENT ON COLUMN mailboxes.created_at IS 'When bouncerd first saw this mailbox.';

CREATE TABLE messages (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	mailbox_id bigint NOT NULL REFERENCES mailboxes (id),
	uidl text NOT NULL,
	outcome text NOT NULL DEFAULT 'recorded'
	    CHECK (outcome IN ('recorded', 'failed', 'quarantined')),
	kind text NOT NULL DEFAULT 'unknown'
	    CHECK (kind IN ('bounce', 'delayed', 'delivered', 'complaint',
	        'autoreply', 'unknown')),
	email_message_id text,
	subject text,
	reporting_mta text,
	reported_at timestamptz,
	size_bytes bigint,
	truncated boolean NOT NULL DEFAULT false,
	raw bytea,
	raw_truncated boolean NOT NULL DEFAULT false,
	repaired_fields text[],
	error text,
	failures integer NOT NULL DEFAULT 0,
	fetched_at timestamptz NOT NULL DEFAULT now(),
	processed_at timestamptz,
	deleted_at timestamptz,
	UNIQUE (mailbox_id, uidl)
);
COMMENT ON TABLE messages IS
    'The ledger: one row per email fetched from a bounce mailbox, bounce or not. A (mailbox, uidl) pair is processed once; the raw email is kept up to database.raw_max_bytes.';
COMMENT ON COLUMN messages.id IS 'Internal number of the fetched email.';
COMMENT ON COLUMN messages.mailbox_id IS 'The mailbox it was fetched from (mailboxes.id).';
COMMENT ON COLUMN messages.uidl IS 'The POP3 server''s unique id of the email in that mailbox.';
COMMENT ON COLUMN messages.outcome IS
    'recorded: decoded and stored; failed: could not be decoded or stored, retried next pass; quarantined: failed on several passes in a row, left on the server and skipped until an operator releases it.';
COMMENT ON COLUMN messages.kind IS
    'What the email is: bounce (delivery failed), delayed (still trying), delivered (success report), complaint (spam report, ARF), autoreply (out of office and similar), unknown (not a report bouncerd recognises).';
COMMENT ON COLUMN messages.email_message_id IS 'The Message-ID header of the bounce email itself.';
COMMENT ON COLUMN messages.subject IS 'The Subject header of the bounce email.';
COMMENT ON COLUMN messages.reporting_mta IS 'The mail server that wrote the report (Reporting-MTA).';
COMMENT ON COLUMN messages.reported_at IS 'The Date header of the bounce email.';
COMMENT ON COLUMN messages.size_bytes IS 'Size of the email on the server, in bytes.';
COMMENT ON COLUMN messages.truncated IS 'True when the email was larger than the fetch limit and only its beginning was decoded.';
COMMENT ON COLUMN messages.raw IS 'The email exactly as fetched (up to database.raw_max_bytes); NULL when not kept.';
COMMENT ON COLUMN messages.raw_truncated IS 'True when raw holds only the beginning of the email.';
COMMENT ON COLUMN messages.repaired_fields IS
    'Names of text fields (of this email or its bounce rows) that held invalid UTF-8 or NUL bytes and were repaired before storing; raw keeps the original bytes.';
COMMENT ON COLUMN messages.error IS 'Why decoding or storing failed (outcome failed or quarantined).';
COMMENT ON COLUMN messages.failures IS 'Passes in a row on which this email failed.';
COMMENT ON COLUMN messages.fetched_at IS 'When bouncerd first fetched the email.';
COMMENT ON COLUMN messages.processed_at IS 'When the email and its bounce rows were stored.';
COMMENT ON COLUMN messages.deleted_at IS 'When the email was deleted from (or found gone on) the POP3 server; NULL while it is still there.';
CREATE INDEX messages_fetched_at_idx ON messages (fetched_at);
CREATE INDEX messages_quarantined_idx ON messages (mailbox_id)
    WHERE outcome <> 'recorded';

CREATE TABLE bounces (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
	recipient text,
	recipient_domain text,
	recipient_source text,
	final_recipient text,
	original_recipient text,
	class text NOT NULL DEFAULT 'unknown'
	    CHECK (class IN ('hard', 'soft', 'complaint', 'autoreply',
	        'delivered', 'unknown')),
	reason text NOT NULL DEFAULT 'undefined',
	action text,
	status text,
	reply_code integer,
	diagnostic text,
	remote_mta text,
	reporting_mta text,
	feedback_type text,
	original_message_id text,
	campaign_id text,
	list_id text,
	subscriber_id text,
	original_headers jsonb NOT NULL DEFAULT '{}',
	counts boolean NOT NULL DEFAULT true,
	not_counted_because text,
	bounced_at timestamptz NOT NULL DEFAULT now(),
	created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE bounces IS
    'One row per recipient named in a bounce, delay, delivery report, complaint or auto-reply.';
COMMENT ON COLUMN bounces.id IS 'Internal number of the bounce record.';
COMMENT ON COLUMN bounces.message_id IS 'The fetched email this record came from (messages.id), not a Message-ID header.';
COMMENT ON COLUMN bounces.recipient IS 'The address that bounced, lower-case; NULL when the report names none.';
COMMENT ON COLUMN bounces.recipient_domain IS 'The part of recipient after the last @, lower-case.';
COMMENT ON COLUMN bounces.recipient_source IS
    'Where the address was found: verp, header:<name> (a header of the returned original), original_recipient, final_recipient or body_text.';
COMMENT ON COLUMN bounces.final_recipient IS 'Final-Recipient of the report, as written.';
COMMENT ON COLUMN bounces.original_recipient IS 'Original-Recipient of the report, as written.';
COMMENT ON COLUMN bounces.class IS
    'hard: the address is bad, stop mailing it; soft: a temporary or not-the-address''s-fault failure; complaint: the recipient reported the email as spam; autoreply: out-of-office and similar, not a failure; delivered: a success report; unknown: nothing recognised (never treated as hard).';
COMMENT ON COLUMN bounces.reason IS
    'Why it bounced, in Sisimai''s vocabulary: userunknown, hostunknown, hasmoved, mailboxfull, blocked, spamdetected, expired, vacation, feedback, delivered, ...';
COMMENT ON COLUMN bounces.action IS 'Action field of the report: failed, delayed, delivered, relayed or expanded.';
COMMENT ON COLUMN bounces.status IS 'Enhanced status code (RFC 3463), for example 5.1.1.';
COMMENT ON COLUMN bounces.reply_code IS 'SMTP reply code, for example 550.';
COMMENT ON COLUMN bounces.diagnostic IS 'The receiving server''s explanation (Diagnostic-Code or the bounce text).';
COMMENT ON COLUMN bounces.remote_mta IS 'The receiving mail server that refused the email (Remote-MTA).';
COMMENT ON COLUMN bounces.reporting_mta IS 'The mail server that wrote the report (Reporting-MTA).';
COMMENT ON COLUMN bounces.feedback_type IS 'For complaints: the ARF Feedback-Type (abuse, fraud, ...).';
COMMENT ON COLUMN bounces.original_message_id IS 'Message-ID of the email you sent that bounced, to join with your send log.';
COMMENT ON COLUMN bounces.campaign_id IS 'Campaign id header of the email you sent (the header name is configured).';
COMMENT ON COLUMN bounces.list_id IS 'List id header of the email you sent (the header name is configured).';
COMMENT ON COLUMN bounces.subscriber_id IS 'Subscriber id header of the email you sent (the header name is configured).';
COMMENT ON COLUMN bounces.original_headers IS 'Headers of the returned original email that bouncerd was configured to keep, as {"Header-Name": "value"}.';
COMMENT ON COLUMN bounces.counts IS
    'False when this record is stored but never counted towards suppression (see not_counted_because).';
COMMENT ON COLUMN bounces.not_counted_because IS
    'Why counts is false: first_pass (recorded by the first pass over a new mailbox with first_pass: record_only) or max_age (older than defaults.max_age when fetched).';
COMMENT ON COLUMN bounces.bounced_at IS 'When it bounced, from the report (falls back to the report''s Date, then to the time it was stored).';
COMMENT ON COLUMN bounces.created_at IS 'When bouncerd stored the record.';
CREATE INDEX bounces_recipient_idx ON bounces (recipient, bounced_at);
CREATE INDEX bounces_domain_idx ON bounces (recipient_domain, bounced_at);
CREATE INDEX bounces_bounced_at_idx ON bounces (bounced_at);
CREATE INDEX bounces_message_id_idx ON bounces (message_id);
CREATE INDEX bounces_campaign_idx ON bounces (campaign_id)
    WHERE campaign_id IS NOT NULL;
CREATE INDEX bounces_original_message_id_idx ON bounces (original_message_id)
    WHERE original_message_id IS NOT NULL;
