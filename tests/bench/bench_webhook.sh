#!/usr/bin/env bash
# bench_webhook.sh - webhook delivery rate: BENCH_WEBHOOK_EVENTS (20,000)
# bounce.recorded events of realistic size queued in webhook_outbox for one
# endpoint, then `bouncerd --once` (an empty mailbox, so the pass costs
# next to nothing) drains them to a local HTTPS receiver
# (tests/helpers/webhook_receiver.js, verifying each with the Standard
# Webhooks reference library and counting).  Prints events delivered per
# second and bouncerd's CPU per event (user + system, less a run with an
# empty outbox).
# Prints figures; asserts nothing.
set -uo pipefail
. "$BOUNCER_SRC/tests/integration/lib_poller.sh"
N=${BENCH_WEBHOOK_EVENTS:-20000}
need_services bench_webhook >/dev/null
for t in node npm openssl; do
	command -v "$t" >/dev/null || { echo "bench_webhook: $t missing, skipped"; exit 0; }
done
NODE_DIR=$BUILD/tests/node
if [ ! -d "$NODE_DIR/node_modules/standardwebhooks" ]; then
	mkdir -p "$NODE_DIR"
	npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" standardwebhooks >/dev/null 2>&1 ||
	    { echo "bench_webhook: npm install standardwebhooks failed"; exit 1; }
fi
export NODE_PATH=$NODE_DIR/node_modules

fresh_db bench_webhook
U=$(pop_user 1)
clear_mailbox "$U"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
RPORT=$(free_port)
echo ok >"$TMP/mode"
RECEIVER_QUIET=1 node "$SRC/tests/helpers/webhook_receiver.js" "$RPORT" "$TMP/cert.pem" \
    "$TMP/key.pem" "$SECRET" "$TMP/rlog" "$TMP/mode" 2>"$TMP/receiver.err" &
RPID=$!
PIDS+=("$RPID")
wait_for 10 test -e "$TMP/rlog.ready"

write_config "$TMP/c.yaml" "" 1 1h 1:delete
cat >>"$TMP/c.yaml" <<EOF
webhooks:
  - name: bench
    url: https://localhost:$RPORT/hook
    ca_file: $TMP/cert.pem
    secret: "$SECRET"
EOF
run_once() {	# -> "wall user sys" of one bouncerd --once
	/usr/bin/time -f "%e %U %S" -o "$TMP/time" "$BIN" -c "$TMP/c.yaml" --once 2>>"$TMP/log"
	cat "$TMP/time"
}
read -r w0 u0 s0 <<<"$(run_once)"	# migrations, endpoint, empty pass

# N events like those the trigger writes (a hard bounce, ~700 bytes)
sql "INSERT INTO webhook_outbox (endpoint, event_id, type, address, payload)
SELECT 'bench', 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'bounce.recorded',
    'user' || i || '@example.org',
    jsonb_build_object('type', 'bounce.recorded', 'timestamp', webhook_time(now()),
        'data', jsonb_build_object('address', 'user' || i || '@example.org',
            'domain', 'example.org', 'class', 'hard', 'reason', 'userunknown',
            'status', '5.1.1', 'action', 'failed', 'reply_code', 550,
            'diagnostic', 'smtp; 550 5.1.1 <user' || i || '@example.org>: Recipient address rejected: User unknown in virtual mailbox table',
            'remote_mta', 'mx.example.org', 'reporting_mta', 'mx.example.net',
            'feedback_type', null, 'campaign_id', '2f1c7e7a-8d0b-4f6e-9a51-0c1d2e3f4a5b',
            'list_id', 'news.example.com', 'subscriber_id', i::text,
            'original_message_id', '<orig-' || i || '@example.com>', 'mailbox', 'mb1',
            'counts', true, 'bounced_at', webhook_time(now()), 'bounce_id', i))
FROM generate_series(1, $N) i" >/dev/null
bytes=$(sql "SELECT avg(length(payload::text))::int FROM webhook_outbox")
read -r w1 u1 s1 <<<"$(run_once)"
left=$(sql "SELECT count(*) FROM webhook_outbox WHERE state <> 'delivered'")
kill "$RPID" 2>/dev/null
wait "$RPID" 2>/dev/null
got=$(cat "$TMP/rlog.count" 2>/dev/null || echo "?")
bad=$(cat "$TMP/rlog" 2>/dev/null | grep -c '"verified":false')
python3 - "$N" "$w0" "$u0" "$s0" "$w1" "$u1" "$s1" <<EOF
import sys
n = int(sys.argv[1])
w0, u0, s0, w1, u1, s1 = map(float, sys.argv[2:])
wall = max(w1 - w0, 0.001)
cpu = max((u1 + s1) - (u0 + s0), 0.0)
print("webhook delivery: %d events of ~%s bytes, one endpoint, HTTPS keep-alive, signed" % (n, "$bytes"))
print("  delivered per second:      %.0f  (drain %.2f s; --once with an empty outbox %.2f s)" % (n / wall, wall, w0))
print("  bouncerd CPU per event:    %.0f us  (user+sys %.2f s for the drain)" % (cpu / n * 1e6, cpu))
print("  receiver got %s requests, %s failed verification; %s rows not delivered" % ("$got", "$bad", "$left"))
EOF
