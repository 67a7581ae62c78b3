#!/usr/bin/env bash
# test_e2e_first_pass.sh - first_pass: record_only.  The first pass over a
# new mailbox (a backlog of old bounces) records everything but counts
# nothing towards suppression; mail arriving later counts as usual.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services first_pass
fresh_db first_pass
U=$(pop_user 4)
clear_mailbox "$U"
seed "$U" dsn-hard 1; seed "$U" dsn-multi 2; seed "$U" arf 3
FIRST_PASS=record_only write_config "$TMP/c.yaml" "" 1 1m 4:delete
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "first pass exit status" 0 $?
check "first pass: recorded, not counted" "4|0|4" \
    "$(sql "SELECT count(*), count(*) FILTER (WHERE counts), count(*) FILTER (WHERE not_counted_because = 'first_pass') FROM bounces")"
check "first pass: deleted" 0 "$(mail_count "$U")"
seed "$U" dsn-hard 4
"$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
check "later mail counts" "true|" "$(sql "SELECT counts || '|' || coalesce(not_counted_because, '') FROM bounces WHERE recipient = 'hard4@example.org'")"
check "nothing recorded twice" 5 "$(sql "SELECT count(*) FROM bounces")"
[ "$FAILS" = 0 ]
