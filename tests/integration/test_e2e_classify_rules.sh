#!/usr/bin/env bash
# test_e2e_classify_rules.sh - classification end to end: every recorded
# bounce names the rule that decided it (bounces.rule, a rule bounce-parse
# --rules lists); an operator rule in classify.rules changes what lands in
# bounces, is applied by --once and by a running daemon after SIGHUP, and a
# config with a bad rule is refused naming file, line and column.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services classify_rules
fresh_db classify_rules
U=$(pop_user 5)
clear_mailbox "$U"
PARSE=$BOUNCER_BUILD/bin/bounce-parse

# Built-in rules only.
seed "$U" dsn-hard 1
write_config "$TMP/c.yaml" "" 1 1m 5:delete
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "built-in: exit status" 0 $?
got=$(sql "SELECT reason || '|' || class FROM bounces WHERE recipient = 'hard1@example.org'")
check "built-in: reason and class" "userunknown|hard" "$got"
rule=$(sql "SELECT rule FROM bounces WHERE recipient = 'hard1@example.org'")
ids=$("$PARSE" --rules | cut -f1)
if [ -n "$rule" ] && grep -qxF "$rule" <<<"$ids"; then
	pass "built-in: bounces.rule names a rule of the table ($rule)"
else
	fail "built-in: bounces.rule names a rule of the table" "got '$rule'"
fi

# An operator rule: mail to this partner's domain refused as unknown is
# their filter, not a dead address.
cp "$TMP/c.yaml" "$TMP/ops.yaml"
cat >>"$TMP/ops.yaml" <<'YAML'
classify:
  rules:
    - name: partner-filter
      domain: example.org
      status: "5.1.1"
      reason: filtered
      class: soft
YAML
seed "$U" dsn-hard 2
"$BIN" -c "$TMP/ops.yaml" --once 2>>"$TMP/log"
check "operator rule: exit status" 0 $?
check "operator rule: what landed" "filtered|soft|op:partner-filter" \
    "$(sql "SELECT reason || '|' || class || '|' || rule FROM bounces WHERE recipient = 'hard2@example.org'")"
check "operator rule: earlier row untouched" "userunknown|hard" \
    "$(sql "SELECT reason || '|' || class FROM bounces WHERE recipient = 'hard1@example.org'")"

# bounce-parse -c applies the same rules to the same message.
sed "s/@ID@/3/g" "$FIX/dsn-hard.eml" >"$TMP/m.eml"
check "bounce-parse -c: operator rule" "filtered soft op:partner-filter" \
    "$("$PARSE" -c "$TMP/ops.yaml" --format tsv "$TMP/m.eml" | awk -F'\t' 'NR == 2 { print $3, $4, $15 }')"
check "bounce-parse without -c: built-in" "userunknown hard" \
    "$("$PARSE" --format tsv "$TMP/m.eml" | awk -F'\t' 'NR == 2 { print $3, $4 }')"

# A bad rule is refused at load with file:line:col and the key at fault.
cp "$TMP/ops.yaml" "$TMP/bad.yaml"
sed -i 's/reason: filtered/reason: no-such-reason/' "$TMP/bad.yaml"
out=$("$BIN" -c "$TMP/bad.yaml" --check-config 2>&1)
check "bad reason refused" 1 $?
line=$(grep -n 'no-such-reason' "$TMP/bad.yaml" | cut -d: -f1)
if echo "$out" | grep -q "bad.yaml:$line:[0-9]*: classify.rules\[0\].reason: 'no-such-reason' is not a known bounce reason"; then
	pass "bad reason: file:line:col and key"
else
	fail "bad reason: file:line:col and key" "$out"
fi
cp "$TMP/ops.yaml" "$TMP/bad2.yaml"
sed -i 's/status: "5.1.1"/status: "5.1"/' "$TMP/bad2.yaml"
out=$("$BIN" -c "$TMP/bad2.yaml" --check-config 2>&1)
check "bad status refused" 1 $?
echo "$out" | grep -q 'classify.rules\[0\].status: "5.1" is not a status pattern' &&
	pass "bad status: names the key" || fail "bad status: names the key" "$out"

# A running daemon picks the rules up on SIGHUP.
row_is() { [ "$(sql "SELECT count(*) FROM bounces WHERE recipient = '$1@example.org'")" = 1 ]; }
write_config "$TMP/d.yaml" "" 1 10s 5:delete
"$BIN" -c "$TMP/d.yaml" 2>"$TMP/dlog" &
PID=$!
PIDS+=("$PID")
seed "$U" dsn-hard 4
wait_for 30 row_is hard4
check "daemon before reload: built-in" "userunknown" \
    "$(sql "SELECT reason FROM bounces WHERE recipient = 'hard4@example.org'")"
cp "$TMP/ops.yaml" "$TMP/d.yaml"
sed -i 's/interval: 1m/interval: 10s/' "$TMP/d.yaml"
kill -HUP "$PID"
wait_for 10 grep -q 'configuration reloaded' "$TMP/dlog" ||
	fail "daemon reload" "$(tail -n 5 "$TMP/dlog")"
seed "$U" dsn-hard 5
wait_for 30 row_is hard5
check "daemon after SIGHUP: operator rule" "filtered|op:partner-filter" \
    "$(sql "SELECT reason || '|' || rule FROM bounces WHERE recipient = 'hard5@example.org'")"
kill -TERM "$PID"
wait "$PID" 2>/dev/null
[ "$FAILS" = 0 ]
