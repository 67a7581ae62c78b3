#!/usr/bin/env bash
# test_e2e_subject.sh - the Subject stored with a bounce is the decoded
# one: RFC 2047 encoded words (Base64 and Q, two charsets) arrive in
# messages.subject as the text a person reads, from one pass over Dovecot.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services subject
fresh_db subject
U=$(pop_user 1)
clear_mailbox "$U"
md=$(maildir "$U")
put() {	# ID SUBJECT
	sed -e "s/@ID@/$1/g" -e "0,/^Subject: .*/s//Subject: $2/" \
	    "$FIX/dsn-hard.eml" >"$md/tmp/s$1"
	chown "$BOUNCER_TEST_MAIL_UID:$BOUNCER_TEST_MAIL_GID" "$md/tmp/s$1"
	mv "$md/tmp/s$1" "$md/new/s$1"
}
# "Unzustellbar: Rückläufer" in UTF-8 Base64; "Non remis : réponse" in
# ISO-8859-1 quoted-printable; a plain one
put 1 "=?UTF-8?B?VW56dXN0ZWxsYmFyOiBSw7xja2zDpHVmZXI=?="
put 2 "=?ISO-8859-1?Q?Non_remis_:_r=E9ponse?="
put 3 "Undelivered Mail Returned to Sender"
write_config "$TMP/c.yaml" "" 1 10m 1:delete
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "pass exit status" 0 $?
check "three recorded" 3 "$(sql "SELECT count(*) FROM messages WHERE outcome = 'recorded'")"
check "Base64 UTF-8 subject decoded" "Unzustellbar: Rückläufer" \
    "$(sql "SELECT subject FROM messages WHERE email_message_id LIKE '%1%' AND subject LIKE 'Unzu%'")"
check "Q ISO-8859-1 subject decoded" "Non remis : réponse" \
    "$(sql "SELECT subject FROM messages WHERE subject LIKE 'Non%'")"
check "plain subject as it was" 1 \
    "$(sql "SELECT count(*) FROM messages WHERE subject = 'Undelivered Mail Returned to Sender'")"
check "no encoded word stored" 0 "$(sql "SELECT count(*) FROM messages WHERE subject LIKE '%=?%'")"
[ "$FAILS" = 0 ]
