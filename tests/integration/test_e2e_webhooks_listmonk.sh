#!/usr/bin/env bash
# test_e2e_webhooks_listmonk.sh - format: listmonk: bouncerd --once posts
# each bounce and complaint to listmonk's bounce webhook form (email,
# campaign_uuid, source, type hard/soft/complaint) with basic auth of an
# API user, to a local HTTPS receiver; a campaign id that is a UUID goes
# into campaign_uuid, another is left out; the token never reaches the
# log or the --check-config output.
set -uo pipefail
. "$(dirname "$0")/lib_poller.sh"
need_services webhooks_listmonk
for t in node npm openssl python3; do
	command -v "$t" >/dev/null || { skip webhooks_listmonk "$t missing (deps.sh test installs nodejs and npm)"; exit 0; }
done
NODE_DIR=$BUILD/tests/node
if [ ! -d "$NODE_DIR/node_modules/standardwebhooks" ]; then
	mkdir -p "$NODE_DIR"
	npm install --silent --no-audit --no-fund --prefix "$NODE_DIR" standardwebhooks >"$TMP/npm.log" 2>&1 ||
	    { fail "npm install standardwebhooks" "$(tail -n 5 "$TMP/npm.log")"; exit 1; }
fi
export NODE_PATH=$NODE_DIR/node_modules

fresh_db webhooks_lm
U=$(pop_user 2)
clear_mailbox "$U"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
SECRET="whsec_$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
LMTOKEN="lm-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
RPORT=$(free_port)
echo ok >"$TMP/mode"
: >"$TMP/rlog"
node "$SRC/tests/helpers/webhook_receiver.js" "$RPORT" "$TMP/cert.pem" "$TMP/key.pem" \
    "$SECRET" "$TMP/rlog" "$TMP/mode" 2>"$TMP/receiver.err" &
PIDS+=("$!")
wait_for 10 test -e "$TMP/rlog.ready"

write_config "$TMP/c.yaml" "" 1 1h 2:delete
cat >>"$TMP/c.yaml" <<YAML
extract:
  campaign_header: X-Listmonk-Campaign
webhooks:
  - name: listmonk
    format: listmonk
    url: https://localhost:$RPORT/webhooks/bounce
    ca_file: $TMP/cert.pem
    username: bouncerd-api
    password: "$LMTOKEN"
    secret: "$SECRET"
YAML
"$BIN" -c "$TMP/c.yaml" --check-config >"$TMP/dump" 2>&1
check "check-config accepts it" 0 $?
check "check-config masks the token" 0 "$(grep -c "$LMTOKEN" "$TMP/dump")"
check "default events" 1 "$(grep -c 'events: \["bounce.recorded", "complaint.recorded"\]' "$TMP/dump")"

# two hard bounces, one with a UUID campaign header and one without; a
# two-recipient report (hard and soft); a complaint
UUID=2f1c7e7a-8d0b-4f6e-9a51-0c1d2e3f4a5b
seed "$U" dsn-hard 1
md=$(maildir "$U")
f=$(ls "$md/new" | head -n 1)
sed -i "s/^Message-ID: <orig-1@example.com>/Message-ID: <orig-1@example.com>\nX-Listmonk-Campaign: $UUID/" "$md/new/$f"
seed "$U" dsn-hard 2
sed -i "s/^Message-ID: <orig-2@example.com>/Message-ID: <orig-2@example.com>\nX-Listmonk-Campaign: not-a-uuid/" "$md/new/$(ls "$md/new" | grep -v "^$f\$" | head -n 1)"
seed "$U" dsn-multi 3
seed "$U" arf 4
"$BIN" -c "$TMP/c.yaml" --once 2>"$TMP/log"
check "--once exit status" 0 $?
check "campaign ids read" "$UUID|not-a-uuid" "$(sql "SELECT string_agg(campaign_id, '|' ORDER BY recipient) FROM bounces WHERE campaign_id IS NOT NULL")"
check "outbox drained" "5|5" "$(sql "SELECT count(*), count(*) FILTER (WHERE state = 'delivered') FROM webhook_outbox")"
got=$(python3 - "$TMP/rlog" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
out = []
for e in sorted(rows, key=lambda e: e["email"] or ""):
    out.append("%s,%s,%s,%s,%s,%s,%s" % (e["email"], e["type"], e["campaign_uuid"], e["source"], e["auth_user"], e["path"], e["verified"]))
print(";".join(out))
PY
)
check "listmonk bodies" "complainer4@example.org,complaint,,bouncerd,bouncerd-api,/webhooks/bounce,True;full3@example.org,soft,,bouncerd,bouncerd-api,/webhooks/bounce,True;gone3@example.org,hard,,bouncerd,bouncerd-api,/webhooks/bounce,True;hard1@example.org,hard,$UUID,bouncerd,bouncerd-api,/webhooks/bounce,True;hard2@example.org,hard,,bouncerd,bouncerd-api,/webhooks/bounce,True" "$got"
check "log: no token" 0 "$(grep -c "$LMTOKEN" "$TMP/log")"
[ "$FAILS" = 0 ]
