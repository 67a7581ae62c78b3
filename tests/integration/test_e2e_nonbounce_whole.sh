#!/usr/bin/env bash
# test_e2e_nonbounce_whole.sh - a person's 800 KB reply that lands in the
# bounce mailbox is recorded whole (not cut to database.raw_max_bytes) and
# only then deleted from the server; retention.raw never drops it, while a
# bounce's raw bytes are capped and trimmed as configured.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services nonbounce_whole
fresh_db nonbounce_whole
U=$(pop_user 1)
clear_mailbox "$U"
md=$(maildir "$U")
{
	printf 'From: Ann Person <ann@example.org>\r\nTo: bounces@example.com\r\n'
	printf 'Subject: Re: your newsletter\r\nMessage-ID: <reply-1@example.org>\r\n'
	printf 'Date: Sat, 21 Nov 2026 10:00:00 +0000\r\n\r\n'
	printf 'Please change my address; the attached letter explains why.\r\n'
	python3 -c "import sys; sys.stdout.write(('x' * 76 + '\r\n') * 10500)"
} >"$md/tmp/reply"
size=$(stat -c %s "$md/tmp/reply")
chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/reply"
mv "$md/tmp/reply" "$md/new/reply"
seed "$U" dsn-hard 1
write_config "$TMP/c.yaml" "" 1 1m 1:delete
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "exit status" 0 $?
check "the reply is recorded whole" "unknown|$size|false" \
    "$(sql "SELECT kind || '|' || length(raw) || '|' || raw_truncated FROM messages WHERE email_message_id = '<reply-1@example.org>'")"
check "both deleted from the server" 0 "$(mail_count "$U")"
# a month later: retention.raw (30 days) trims the bounce, not the reply
sql "UPDATE messages SET fetched_at = now() - interval '40 days'" >/dev/null
seed "$U" dsn-hard 2
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "retention keeps the reply" "$size" \
    "$(sql "SELECT length(raw) FROM messages WHERE email_message_id = '<reply-1@example.org>'")"
check "retention trims the old bounce" "" \
    "$(sql "SELECT coalesce(length(raw)::text, '') FROM messages WHERE email_message_id = '<dsn-hard-1@mx.example.net>'")"
[ "$FAILS" = 0 ]
