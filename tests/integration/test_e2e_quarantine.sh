#!/usr/bin/env bash
# test_e2e_quarantine.sh - one bad message never stalls a mailbox: a
# message whose rows the database refuses is recorded as failed (with its
# raw bytes) while the others go through; after three failing passes it is
# quarantined, left on the server and skipped; once an operator releases
# it (the SQL in the README) it is processed.  An over-size message is
# decoded from its head and recorded as truncated.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services quarantine
fresh_db quarantine
U=$(pop_user 2)
clear_mailbox "$U"
write_config "$TMP/c.yaml" "" 1 10s 2:delete
sed -i 's/^  max_messages: .*/&\n  max_message_bytes: 64KiB/' "$TMP/c.yaml"
"$BIN" -c "$TMP/c.yaml" --migrate 2>>"$TMP/log" || { fail "migrate" "$(tail -n 3 "$TMP/log")"; exit 1; }
# the database refuses any bounce row for a "poison" recipient
sql "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS \$\$
    BEGIN IF NEW.recipient LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned recipient'; END IF;
    RETURN NEW; END \$\$;
    CREATE TRIGGER poison BEFORE INSERT ON bounces FOR EACH ROW EXECUTE FUNCTION poison();" >/dev/null

seed "$U" dsn-hard 1; seed "$U" dsn-hard poison9; seed "$U" dsn-multi 2; seed "$U" plain 3
# an over-size DSN: 100 KiB of returned original after the status part
big=$TMP/big.eml
sed "s/@ID@/77/g" "$FIX/dsn-hard.eml" | sed '$d' >"$big"
{ echo; echo "--BOUNDARY-77"; echo "Content-Type: text/plain"; echo
  for i in $(seq 1 2000); do echo "filler line $i of the returned message body....."; done
  echo "--BOUNDARY-77--"; } >>"$big"
md=$(maildir "$U")
cp "$big" "$md/tmp/big"; chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/big"; mv "$md/tmp/big" "$md/new/big"

poison_state() { sql "SELECT outcome || ':' || failures || ':' || (raw IS NOT NULL) FROM messages WHERE email_message_id IS NULL AND position('poison9' in convert_from(raw, 'UTF8')) > 0 OR (outcome <> 'recorded')" | head -n 1; }

"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "pass 1 exit status" 0 $?
check "pass 1: the others recorded" 4 "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")"
check "pass 1: poison failed once, raw kept" "failed:1:true" "$(poison_state)"
check "pass 1: error recorded" 1 "$(sql "SELECT count(*) FROM messages WHERE outcome = 'failed' AND error LIKE '%poisoned recipient%'")"
check "pass 1: only the poison left on the server" 1 "$(mail_count "$U")"
check "over-size: recorded from its head" "t|hard77@example.org" \
    "$(sql "SELECT m.truncated, x.recipient FROM messages m JOIN bounces x ON x.message_id = m.id WHERE m.truncated")"
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "pass 2: failed twice" "failed:2:true" "$(poison_state)"
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "pass 3: quarantined" "quarantined:3:true" "$(poison_state)"
check "pass 3: logged" 1 "$(grep 'pass done' "$TMP/log" | tail -n 1 | grep -c 'quarantined=1')"
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "pass 4: skipped, not fetched" 1 "$(grep 'pass done' "$TMP/log" | tail -n 1 | grep -c 'fetched=0 .*skipped_quarantined=1')"
check "pass 4: still on the server" 1 "$(mail_count "$U")"
check "no bounce rows for it" 0 "$(sql "SELECT count(*) FROM bounces WHERE recipient LIKE '%poison%'")"

# the operator fixes the cause and releases it
sql "DROP TRIGGER poison ON bounces" >/dev/null
sql "UPDATE messages SET outcome = 'failed', failures = 0
    WHERE outcome = 'quarantined'
    AND mailbox_id = (SELECT id FROM mailboxes WHERE name = 'mb2')" >/dev/null
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "released: recorded" "recorded|0" "$(sql "SELECT outcome || '|' || failures FROM messages WHERE email_message_id = '<dsn-hard-poison9@mx.example.net>'")"
check "released: its bounce row" 1 "$(sql "SELECT count(*) FROM bounces WHERE recipient = 'hardpoison9@example.org'")"
check "released: deleted from the server" 0 "$(mail_count "$U")"
check "every message once" "5|5" "$(sql "SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM bounces)")"
[ "$FAILS" = 0 ]
