#!/usr/bin/env bash
# test_e2e_webhooks.sh - bouncerd tells an HTTPS endpoint about every
# suppression and bounce: real bouncerd, PostgreSQL and Dovecot, and a
# local receiver (tests/helpers/webhook_receiver.js) that verifies each
# delivery with the Standard Webhooks reference library (npm package
# standardwebhooks).  Faults: the receiver down at first, then up (all
# delivered, none dead); 500s; an answer that never comes (timeout); a
# redirect to another host (not followed); a receiver with the wrong
# secret (it notices); kill -9 of bouncerd mid-delivery (redelivered with
# the same id); events past max_age (dead, then replayed); /healthz and
# /metrics; --once drains the outbox; no secret in logs or dumps.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services webhooks
for t in node npm openssl curl python3; do
	command -v "$t" >/dev/null || { skip webhooks "$t missing (deps.sh test installs nodejs and npm)"; exit 0; }
done

# the reference library, installed once per build directory
NODE_DIR=$BUILD/tests/node
if [ ! -d "$NODE_DIR/node_modules/standardwebhooks" ]; then
	mkdir -p "$NODE_DIR"
	if ! npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" standardwebhooks >"$TMP/npm.log" 2>&1; then
		fail "npm install standardwebhooks" "$(tail -n 5 "$TMP/npm.log")"
		exit 1
	fi
fi
export NODE_PATH=$NODE_DIR/node_modules

fresh_db webhooks
U1=$(pop_user 1)
clear_mailbox "$U1"

# a self-signed certificate for localhost, trusted through ca_file
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
TOKEN="tok-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
RPORT=$(free_port)
OPORT=$(free_port)	# the "other host" a redirect points to
HPORT=$(free_port)
URL=http://127.0.0.1:$HPORT
MODE=$TMP/mode
RLOG=$TMP/received.jsonl
OLOG=$TMP/other.jsonl
echo ok >"$MODE"
echo ok >"$TMP/other-mode"
: >"$RLOG"
: >"$OLOG"

RPID=""
start_receiver() {
	rm -f "$RLOG.ready"
	node "$SRC/tests/helpers/webhook_receiver.js" "$RPORT" "$TMP/cert.pem" "$TMP/key.pem" \
	    "$SECRET" "$RLOG" "$MODE" "https://127.0.0.1:$OPORT/stolen" 2>>"$TMP/receiver.err" &
	RPID=$!
	PIDS+=("$RPID")
	wait_for 10 test -e "$RLOG.ready"
}
stop_receiver() { kill "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; RPID=""; }

CONF=$TMP/c.yaml
write_webhook_config() {	# extra lines appended to the endpoint
	LOG_LEVEL=debug write_config "$CONF" "127.0.0.1:$HPORT" 1 10s 1:delete
	cat >>"$CONF" <<EOF
webhooks:
  - name: crm
    url: https://localhost:$RPORT/hooks/bouncerd
    ca_file: $TMP/cert.pem
    secret_file: $TMP/secret
    headers: ["Authorization: Bearer $TOKEN"]
    timeout: 2s
    backoff_min: 200ms
    backoff_max: 1s
    degraded_after: 10m
EOF
}
printf '%s\n' "$SECRET" >"$TMP/secret"
chmod 600 "$TMP/secret"
write_webhook_config

BPID=""
start_bouncerd() {
	"$BIN" -c "$CONF" 2>>"$TMP/log" &
	BPID=$!
	PIDS+=("$BPID")
}

outbox() { sql "SELECT count(*) FILTER (WHERE state = 'pending') || '|' || count(*) FILTER (WHERE state = 'delivered') || '|' || count(*) FILTER (WHERE state = 'dead') FROM webhook_outbox"; }
all_delivered() {	# N: N rows, all delivered
	[ "$(outbox)" = "0|$1|0" ]
}
# distinct event ids the receiver accepted (verified, answered 200)
accepted_ids() { python3 -c '
import json, sys
ids = set()
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["verified"] and e["status"] == 200:
        ids.add(e["id"])
print(len(ids))' "$RLOG"; }

# --check-config: the secret and the header value are masked
"$BIN" -c "$CONF" --check-config >"$TMP/dump" 2>&1
check "check-config accepts the endpoint" 0 $?
check "check-config masks the header value" 1 "$(grep -c 'headers: \["Authorization: \*\*\*\*\*\*\*\*"\]' "$TMP/dump")"
check "check-config: no secret, no token" 0 "$(grep -c -e "$TOKEN" -e "${SECRET#whsec_}" "$TMP/dump")"

# 1. 20 hard bounces, 5 two-recipient reports, 5 complaints; the
# receiver is down when bouncerd starts
seed_many "$U1" dsn-hard 1 20
seed_many "$U1" dsn-multi 21 25
seed_many "$U1" arf 26 30
start_bouncerd
ledger_is() { [ "$(ledger_count "$1")" = "$2" ]; }
wait_for 30 ledger_is mb1 30 || fail "recorded" "$(ledger_count mb1) of 30 messages"
retried() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE attempts >= 2 AND state = 'pending'")" -gt 0 ]; }
wait_for 20 retried && pass "receiver down: attempts retried" ||
    fail "receiver down: attempts retried" "$(outbox)"
check "receiver down: nothing dead" 0 "$(sql "SELECT count(*) FROM webhook_outbox WHERE state = 'dead'")"
check "receiver down: the cause is kept" 1 "$(sql "SELECT count(*) > 0 FROM webhook_outbox WHERE last_error ILIKE '%connect%'" | grep -c t)"
start_receiver
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 30 all_delivered "$N" && pass "receiver back: everything delivered, none dead" ||
    fail "receiver back: everything delivered, none dead" "$(outbox) of $N"
check "every suppression added is an event" \
    "$(sql "SELECT count(*) FROM suppression_changes WHERE change = 'added'")" \
    "$(sql "SELECT count(*) FROM webhook_outbox WHERE type = 'suppression.added'")"
check "every bounce and complaint is an event" \
    "$(sql "SELECT count(*) FROM bounces WHERE class IN ('hard', 'soft', 'complaint')")" \
    "$(sql "SELECT count(*) FROM webhook_outbox WHERE type IN ('bounce.recorded', 'complaint.recorded')")"
# soft bounces (mailboxfull) do not reach the threshold: 20 + 5 + 5
check "suppression.added for the hard and complaining addresses" 30 "$(sql "SELECT count(DISTINCT address) FROM webhook_outbox WHERE type = 'suppression.added'")"
check "receiver verified every event" "$N" "$(accepted_ids)"
check "receiver: no unverified request yet" 0 "$(grep -c '"verified":false' "$RLOG")"
check "bearer token sent" 0 "$(grep -c '"auth":"absent"' "$RLOG")"
check "posted to the URL's path" 0 "$(grep -vc '"path":"/hooks/bouncerd"' "$RLOG")"

# each suppressed address: the receiver saw its events in the order they
# were queued (first arrival of each id), bounce before suppression
sql "SELECT address, event_id FROM webhook_outbox ORDER BY id" >"$TMP/queued"
order=$(python3 - "$RLOG" "$TMP/queued" <<'EOF'
import json, sys
seen, got = set(), {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e["verified"] and e["status"] == 200 and e["id"] not in seen:
        seen.add(e["id"])
        got.setdefault(e["address"], []).append(e["id"])
want = {}
for line in open(sys.argv[2]):
    a, i = line.rstrip("\n").split("|")
    want.setdefault(a, []).append(i)
bad = [a for a in want if got.get(a) != want[a]]
print("ok" if not bad and want else "out of order: " + ",".join(bad[:5]))
EOF
)
check "in order per address" ok "$order"
check "bounce.recorded before suppression.added" 0 "$(sql "SELECT count(*) FROM webhook_outbox a JOIN webhook_outbox s ON s.address = a.address AND s.type = 'suppression.added' AND a.type = 'bounce.recorded' WHERE s.id < a.id")"
# the payload
p=$(sql "SELECT payload FROM webhook_outbox WHERE type = 'suppression.added' AND address = 'hard1@example.org'")
check "payload: suppression.added data" "suppression.added|hard1@example.org|hard|userunknown|5.1.1|mb1|hard_bounce|t" \
    "$(sql "SELECT p->>'type', p->'data'->>'address', p->'data'->>'class', p->'data'->>'reason', p->'data'->>'status', p->'data'->>'mailbox', p->'data'->>'suppressed_because', p->'data'->>'first_bounced_at' IS NOT NULL FROM (SELECT '$p'::jsonb AS p) x")"
check "payload: complaint.recorded" 5 "$(sql "SELECT count(*) FROM webhook_outbox WHERE type = 'complaint.recorded' AND payload->'data'->>'class' = 'complaint'")"

# /metrics and /healthz
m=$(curl -s "$URL/metrics")
check "metrics: delivered" 1 "$(grep -c "^bouncerd_webhook_delivered_total{endpoint=\"crm\"} $N\$" <<<"$m")"
check "metrics: retried" 1 "$(grep -c '^bouncerd_webhook_retries_total{endpoint="crm"} [1-9]' <<<"$m")"
check "metrics: last status" 1 "$(grep -c '^bouncerd_webhook_last_status{endpoint="crm"} 200$' <<<"$m")"
check "metrics: dead" 1 "$(grep -c '^bouncerd_webhook_dead_total{endpoint="crm"} 0$' <<<"$m")"
queue_empty() { curl -s "$URL/metrics" | grep -q '^bouncerd_webhook_queued_events{endpoint="crm"} 0$'; }
wait_for 10 queue_empty && pass "metrics: queue empty" || fail "metrics: queue empty" "$(curl -s "$URL/metrics" | grep queued)"
check "healthz: webhooks ok" 200 "$(curl -s -o "$TMP/h" -w '%{http_code}' "$URL/healthz")"
check "healthz: endpoint listed" 1 "$(grep -c '"webhooks":{"crm":{"ok":true' "$TMP/h")"

# 2. 500s: retried, then delivered
seen_status() {	# STATUS MODE
	grep -q "\"mode\":\"$2\",\"status\":$1" "$RLOG"
}
echo 500 >"$MODE"
seed "$U1" dsn-hard 31
wait_for 30 seen_status 500 500 && pass "500: the receiver answered 500" || fail "500: the receiver answered 500" "no request"
kept500() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE last_status = 500 AND state = 'pending'")" -gt 0 ]; }
wait_for 10 kept500 &&
    pass "500: kept pending with its status" || fail "500: kept pending with its status" "$(outbox)"
echo ok >"$MODE"
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 20 all_delivered "$N" && pass "500: delivered once answered" || fail "500: delivered once answered" "$(outbox)"

# 3. an answer that never comes: the 2 s timeout, then a retry
echo hang >"$MODE"
seed "$U1" dsn-hard 32
timed_out() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE last_error ILIKE '%timed out%' AND state = 'pending'")" -gt 0 ]; }
wait_for 40 timed_out && pass "hang: attempt timed out" || fail "hang: attempt timed out" "$(sql "SELECT last_error FROM webhook_outbox WHERE state = 'pending' LIMIT 1")"
echo ok >"$MODE"
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 20 all_delivered "$N" && pass "hang: delivered later" || fail "hang: delivered later" "$(outbox)"

# 4. a redirect to another host is not followed
node "$SRC/tests/helpers/webhook_receiver.js" "$OPORT" "$TMP/cert.pem" "$TMP/key.pem" \
    "$SECRET" "$OLOG" "$TMP/other-mode" 2>>"$TMP/receiver.err" &
PIDS+=("$!")
wait_for 10 test -e "$OLOG.ready"
echo redirect >"$MODE"
seed "$U1" dsn-hard 33
redirected() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE last_status = 302 AND last_error LIKE '%redirect not followed%'")" -gt 0 ]; }
wait_for 30 redirected && pass "redirect: answered 302, recorded as not followed" || fail "redirect: recorded" "$(outbox)"
check "redirect: the other host got nothing" 0 "$(wc -l <"$OLOG")"
echo ok >"$MODE"
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 20 all_delivered "$N" && pass "redirect: delivered to the URL later" || fail "redirect: delivered later" "$(outbox)"

# 5. the receiver holds another secret: it detects every request
echo wrongsecret >"$MODE"
seed "$U1" dsn-hard 34
wrong() { grep -q '"verified":false,"why":"No matching signature found","mode":"wrongsecret","status":401' "$RLOG"; }
wait_for 30 wrong && pass "wrong secret: the receiver refuses the signature" ||
    fail "wrong secret: the receiver refuses the signature" "$(tail -n 2 "$RLOG")"
check "wrong secret: kept pending (401)" 1 "$(sql "SELECT count(*) > 0 FROM webhook_outbox WHERE last_status = 401 AND state = 'pending'" | grep -c t)"
echo ok >"$MODE"
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 20 all_delivered "$N" && pass "wrong secret: delivered once fixed" || fail "wrong secret: delivered once fixed" "$(outbox)"

# 6. kill -9 while a request is in flight: the event is sent again after
# the restart, with the same webhook-id
echo hang >"$MODE"
HUNG_BEFORE=$(grep -c '"mode":"hang"' "$RLOG")
seed "$U1" dsn-hard 35
in_flight() { [ "$(grep -c '"mode":"hang"' "$RLOG")" -gt "$HUNG_BEFORE" ]; }
if wait_for 30 in_flight; then
	HUNG_ID=$(grep '"mode":"hang"' "$RLOG" | tail -n 1 | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["id"])')
	kill -KILL "$BPID"
	wait "$BPID" 2>/dev/null
	echo ok >"$MODE"
	check "kill -9: the event is still pending" pending "$(sql "SELECT state FROM webhook_outbox WHERE event_id = '$HUNG_ID'")"
	start_bouncerd
	N=$(sql "SELECT count(*) FROM webhook_outbox")
	wait_for 30 all_delivered "$N" && pass "kill -9: everything delivered after restart" ||
	    fail "kill -9: everything delivered after restart" "$(outbox)"
	check "kill -9: redelivered with the same id" 1 \
	    "$(grep "\"id\":\"$HUNG_ID\"" "$RLOG" | grep -c '"verified":true,"why":null,"mode":"ok","status":200')"
else
	fail "kill -9 mid-delivery" "no request in flight"
fi

# 7. past max_age: dead, kept, replayed by SQL with the same id
echo 500 >"$MODE"
seed "$U1" dsn-hard 36
failing() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE state = 'pending' AND attempts >= 1")" -gt 0 ]; }
wait_for 30 failing
# healthz: the oldest undelivered event is past degraded_after
sql "UPDATE webhook_outbox SET created_at = now() - interval '1 hour' WHERE state = 'pending'" >/dev/null
unhealthy() { [ "$(curl -s -o "$TMP/h" -w '%{http_code}' "$URL/healthz")" = 503 ]; }
wait_for 10 unhealthy && pass "healthz: 503 when an endpoint lags" || fail "healthz: 503 when an endpoint lags" "$(cat "$TMP/h")"
check "healthz: names the endpoint" 1 "$(grep -c '"status":"fail".*"crm":{"ok":false' "$TMP/h")"
sql "UPDATE webhook_outbox SET queued_at = now() - interval '4 days' WHERE state = 'pending'" >/dev/null
dead() { [ "$(sql "SELECT count(*) FROM webhook_outbox WHERE state = 'dead'")" -gt 0 ]; }
wait_for 20 dead && pass "max_age: given up, kept as dead" || fail "max_age: given up" "$(outbox)"
grep -q 'webhook event given up after max_age' "$TMP/log" && pass "max_age: logged" || fail "max_age: logged" "no line"
DEAD=$(sql "SELECT string_agg(event_id, ',' ORDER BY id) FROM webhook_outbox WHERE state = 'dead'")
wait_for 10 bash -c "curl -s '$URL/metrics' | grep -q '^bouncerd_webhook_dead_events{endpoint=\"crm\"} [1-9]'" &&
    pass "metrics: dead events" || fail "metrics: dead events" "$(curl -s "$URL/metrics" | grep dead)"
echo ok >"$MODE"
check "webhook_replay() requeues them" "$(tr ',' '\n' <<<"$DEAD" | wc -l)" "$(sql "SELECT webhook_replay('crm')")"
N=$(sql "SELECT count(*) FROM webhook_outbox")
wait_for 20 all_delivered "$N" && pass "replayed: delivered" || fail "replayed: delivered" "$(outbox)"
for id in ${DEAD//,/ }; do
	grep "\"id\":\"$id\"" "$RLOG" | grep -q '"mode":"ok","status":200' || fail "replayed with its id" "$id"
done
pass "replayed with their ids"
wait_for 10 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$URL/healthz')\" = 200 ]" &&
    pass "healthz: 200 again" || fail "healthz: 200 again" "$(curl -s "$URL/healthz")"

# 8. --once records the mail and drains the outbox before exiting
kill -TERM "$BPID"
wait "$BPID"
check "SIGTERM exit status" 0 $?
seed_many "$U1" dsn-hard 40 44
check "unsuppress()" t "$(sql "SELECT unsuppress('hard1@example.org', 'webhook test')")"
"$BIN" -c "$CONF" --once 2>>"$TMP/log"
check "--once exit status" 0 $?
N=$(sql "SELECT count(*) FROM webhook_outbox")
check "--once: drained" "0|$N|0" "$(outbox)"
check "--once: the receiver has them (bounce and suppression)" 10 "$(grep -c '"address":"hard4[0-4]@example.org","email":null,"verified":true,"why":null,"mode":"ok","status":200' "$RLOG" | head -1)"

check "suppression.lifted delivered" 1 "$(grep '"type":"suppression.lifted","address":"hard1@example.org"' "$RLOG" | grep -c '"verified":true,"why":null,"mode":"ok","status":200')"
check "suppression.lifted payload" "hard_bounce|userunknown|mb1" "$(sql "SELECT payload->'data'->>'suppressed_because', payload->'data'->>'reason', payload->'data'->>'mailbox' FROM webhook_outbox WHERE type = 'suppression.lifted'")"

# nothing secret in the log
check "log: no secret, token or signature key" 0 "$(grep -c -e "$TOKEN" -e "${SECRET#whsec_}" "$TMP/log")"
grep -q 'webhook delivery failed.*endpoint=crm' "$TMP/log" && pass "log: failures name the endpoint" ||
    fail "log: failures name the endpoint" "no line"
check "log: never the URL" 0 "$(grep -c "localhost:$RPORT" "$TMP/log")"
stop_receiver
[ "$FAILS" = 0 ]
