#!/bin/sh
# Generates a self-signed certificate for the name "dovecot" into the
# shared /certs volume (bouncerd verifies against it), creates the demo
# mailbox from the password secret, seeds it once, and runs Dovecot.
set -eu
if [ ! -f /certs/cert.pem ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=dovecot \
	    -addext "subjectAltName=DNS:dovecot,DNS:localhost" \
	    -keyout /certs/key.pem -out /certs/cert.pem 2>/dev/null
	chmod 644 /certs/cert.pem
	chmod 600 /certs/key.pem
fi
id vmail >/dev/null 2>&1 || useradd --system --uid 5000 --home-dir /srv/mail vmail
printf 'bounces1:{PLAIN}%s\n' "$(cat /run/secrets/pop3_password)" >/etc/dovecot/demo.passwd
chmod 644 /etc/dovecot/demo.passwd
md=/srv/mail/bounces1/Maildir
if [ ! -d "$md" ]; then
	mkdir -p "$md/new" "$md/cur" "$md/tmp"
	n=0
	for f in /seed/*.eml; do
		n=$((n + 1))
		cp "$f" "$md/new/seed.$n.$(basename "$f")"
	done
	chown -R vmail:vmail /srv/mail
fi
exec dovecot -F -c /etc/dovecot/bouncerd-demo.conf
