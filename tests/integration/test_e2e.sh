#!/usr/bin/env bash
# test_e2e.sh - bouncerd --once against real Dovecot POP3S and PostgreSQL:
# three mailboxes seeded with bounces, a multi-recipient DSN, complaints,
# auto-replies and plain mail; two in delete mode, one in keep mode.
# Checks the exact ledger and bounce rows, what is left on the servers,
# that a second pass changes nothing, and keep_days expiry.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services e2e
fresh_db e2e
U1=$(pop_user 1) U2=$(pop_user 2) U3=$(pop_user 3)
for u in "$U1" "$U2" "$U3"; do clear_mailbox "$u"; done

seed "$U1" dsn-hard 101; seed "$U1" dsn-hard 102; seed "$U1" dsn-multi 201
seed "$U1" arf 301; seed "$U1" autoreply 401; seed "$U1" plain 501
seed "$U2" dsn-hard 111; seed "$U2" dsn-hard 112; seed "$U2" dsn-hard 113
seed "$U2" plain 511; seed "$U2" plain 512
seed "$U3" dsn-hard 121; seed "$U3" dsn-multi 221; seed "$U3" arf 321
seed "$U3" autoreply 421; seed "$U3" plain 521

write_config "$TMP/c.yaml" "" 3 1m 1:delete 2:delete 3:keep
# --no-migrate refuses an empty schema; --migrate applies it and exits
"$BIN" -c "$TMP/c.yaml" --once --no-migrate 2>"$TMP/log0"
check "--no-migrate on an empty database fails" 1 $?
check "--no-migrate says what to do" 1 "$(grep -c 'bouncerd --migrate' "$TMP/log0")"
check "nothing fetched without a schema" 6 "$(mail_count "$U1")"
"$BIN" -c "$TMP/c.yaml" --once --migrate 2>/dev/null
check "--once with --migrate is a usage error" 2 $?
"$BIN" -c "$TMP/c.yaml" --migrate 2>"$TMP/log0"
check "--migrate exit status" 0 $?
check "--migrate fetches nothing" 6 "$(mail_count "$U1")"
"$BIN" -c "$TMP/c.yaml" --once --no-migrate 2>"$TMP/log1"
check "once exit status" 0 $?

check "mb1 ledger rows" 6 "$(ledger_count mb1)"
check "mb2 ledger rows" 5 "$(ledger_count mb2)"
check "mb3 ledger rows" 5 "$(ledger_count mb3)"
check "mb1 bounce rows" 6 "$(bounce_count mb1)"
check "mb2 bounce rows" 3 "$(bounce_count mb2)"
check "mb3 bounce rows" 5 "$(bounce_count mb3)"
check "every message recorded" 0 "$(sql "SELECT count(*) FROM messages WHERE outcome <> 'recorded'")"

want=$(printf '%s\n' \
    "mb1|away401@example.org|autoreply|vacation" \
    "mb1|complainer301@example.org|complaint|feedback" \
    "mb1|full201@example.org|soft|mailboxfull" \
    "mb1|gone201@example.org|hard|userunknown" \
    "mb1|hard101@example.org|hard|userunknown" \
    "mb1|hard102@example.org|hard|userunknown" \
    "mb2|hard111@example.org|hard|userunknown" \
    "mb2|hard112@example.org|hard|userunknown" \
    "mb2|hard113@example.org|hard|userunknown" \
    "mb3|away421@example.org|autoreply|vacation" \
    "mb3|complainer321@example.org|complaint|feedback" \
    "mb3|full221@example.org|soft|mailboxfull" \
    "mb3|gone221@example.org|hard|userunknown" \
    "mb3|hard121@example.org|hard|userunknown")
got=$(sql "SELECT b.name, x.recipient, x.class, x.reason FROM bounces x
    JOIN messages m ON m.id = x.message_id JOIN mailboxes b ON b.id = m.mailbox_id
    ORDER BY 1, 2")
check "bounce rows exactly" "$want" "$got"
check "original message ids joined" "<orig-101@example.com>" \
    "$(sql "SELECT original_message_id FROM bounces WHERE recipient = 'hard101@example.org'")"
check "plain mail kept as unknown with raw bytes" "4|4" \
    "$(sql "SELECT count(*), count(raw) FROM messages WHERE kind = 'unknown'")"
check "raw bytes intact" 1 \
    "$(sql "SELECT count(*) FROM messages WHERE kind = 'unknown' AND position('Message number 501.' in convert_from(raw, 'UTF8')) > 0")"
check "kinds" "autoreply|2 bounce|8 complaint|2 unknown|4" \
    "$(sql "SELECT kind || '|' || count(*) FROM messages GROUP BY kind ORDER BY kind" | tr '\n' ' ' | sed 's/ $//')"

check "Message-ID and Subject of each email" "16|16|<arf-301@isp.example.net>" \
    "$(sql "SELECT count(email_message_id), count(subject), max(email_message_id) FILTER (WHERE subject = 'Abuse report' AND email_message_id LIKE '%301%') FROM messages")"
check "mb1 emptied (delete)" 0 "$(mail_count "$U1")"
check "mb2 emptied (delete)" 0 "$(mail_count "$U2")"
check "mb3 untouched (keep)" 5 "$(mail_count "$U3")"
check "delete mode ledger marked deleted" 11 "$(sql "SELECT count(*) FROM messages WHERE deleted_at IS NOT NULL")"
check "one info line per mailbox pass" 3 "$(grep -c 'pass done' "$TMP/log1")"
check "no password in logs" 0 "$(grep -c -e "$(pop_pass 1)" -e "$(pop_pass 2)" -e "$(pop_pass 3)" "$TMP/log1")"

# A second pass: nothing new, nothing recorded twice, keep mode keeps.
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log2"
check "second pass exit status" 0 $?
check "second pass adds no message" 16 "$(sql "SELECT count(*) FROM messages")"
check "second pass adds no bounce" 14 "$(sql "SELECT count(*) FROM bounces")"
check "keep mode still keeps" 5 "$(mail_count "$U3")"
check "second pass fetched nothing" 3 "$(grep -c 'fetched=0' "$TMP/log2")"

# New mail arrives in the keep mailbox: only it is fetched.
seed "$U3" dsn-hard 122
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log3"
check "keep mode fetches only the new one" 1 "$(grep 'mailbox=mb3' "$TMP/log3" | grep -c 'fetched=1 ')"
check "mb3 ledger rows after new mail" 6 "$(ledger_count mb3)"

# keep_days: messages first fetched 8 days ago are deleted on the server.
sql "UPDATE messages SET fetched_at = now() - interval '8 days' FROM mailboxes b
    WHERE b.id = messages.mailbox_id AND b.name = 'mb3' AND uidl IN
    (SELECT uidl FROM messages m2 WHERE m2.mailbox_id = b.id ORDER BY id LIMIT 4)" >/dev/null
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log4"
check "keep_days expiry exit status" 0 $?
check "keep_days expired ones deleted on the server" 2 "$(mail_count "$U3")"
check "keep_days ledger marked" 4 "$(sql "SELECT count(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'mb3' AND deleted_at IS NOT NULL")"
check "keep_days records nothing again" 15 "$(sql "SELECT count(*) FROM bounces")"
[ "$FAILS" = 0 ]
