#!/bin/sh
# dovecot-demo [seed] - the demo Dovecot's entrypoint.  Generates a
# self-signed certificate for the name "dovecot" into the shared /certs
# volume (bouncerd verifies against it), writes the password file for the
# mailboxes bounces1 and bounces2 from the pop3_password secret, seeds both
# mailboxes with the demo bounces the first time, and runs Dovecot.
# `dovecot-demo seed` (through `exec`) adds the demo bounces again.
# The fixtures' dates are moved to the last few days, so the bounces count
# (defaults.max_age) whenever the demo runs.
set -eu
users="bounces1 bounces2"

seed() {	# TAG
	for u in $users; do
		md=/srv/mail/$u/Maildir
		mkdir -p "$md/new" "$md/cur" "$md/tmp"
		n=0
		for f in /seed/*.eml; do
			n=$((n + 1))
			t=$md/tmp/$1.$n.$(basename "$f")
			sed -e "s/Mon, 16 Nov 2026/$(date -u -d '6 days ago' '+%a, %d %b %Y')/g" \
			    -e "s/16 Nov 2026/$(date -u -d '6 days ago' '+%d %b %Y')/g" \
			    -e "s/Tue, 17 Nov 2026/$(date -u -d '5 days ago' '+%a, %d %b %Y')/g" \
			    -e "s/Wed, 18 Nov 2026/$(date -u -d '4 days ago' '+%a, %d %b %Y')/g" "$f" >"$t"
			mv "$t" "$md/new/"
		done
	done
	chown -R vmail:vmail /srv/mail
	echo "dovecot-demo: seeded $users with $n messages each"
}

if [ "${1:-}" = seed ]; then
	seed "seed-$(date +%s%N)"
	exit 0
fi
if [ ! -f /certs/cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=dovecot \
	    -addext "subjectAltName=DNS:dovecot,DNS:localhost" \
	    -keyout /certs/key.pem -out /certs/cert.pem 2>/dev/null
	chmod 644 /certs/cert.pem
	chmod 600 /certs/key.pem
fi
mkdir -p /run/dovecot-demo
pw=$(cat /run/secrets/pop3_password)
: >/run/dovecot-demo/passwd
for u in $users; do
	printf '%s:{PLAIN}%s\n' "$u" "$pw" >>/run/dovecot-demo/passwd
done
chmod 644 /run/dovecot-demo/passwd
[ -d /srv/mail/bounces1/Maildir ] || seed seed
exec dovecot -F -c /etc/dovecot/bouncerd-demo.conf
