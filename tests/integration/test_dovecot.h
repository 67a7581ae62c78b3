/*
 * test_dovecot.h - helpers shared by the integration tests that talk to
 * the Dovecot of tests/services.sh: its settings from the environment, a
 * message dropped into a user's Maildir the way an MDA does, POP3S
 * options for one of its users, and a login that must be refused.
 */
#ifndef BOUNCER_TEST_DOVECOT_H
#define BOUNCER_TEST_DOVECOT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "pop3/pop3.h"
#include "test.h"

struct dovecot {
	const char *host, *ca, *wrong_ca, *maildir_root, *log, *users;
	int port, stls_port, mail_uid, mail_gid;
};

static __attribute__((unused)) int
dovecot_env_int(const char *name)
{
	const char *v = getenv(name);
	return v ? (int)strtol(v, NULL, 10) : 0;
}

/* Reads the BOUNCER_TEST_POP3* settings; a missing one stays NULL / 0. */
static __attribute__((unused)) void
dovecot_from_env(struct dovecot *d)
{
	d->host = getenv("BOUNCER_TEST_POP3S_HOST");
	d->ca = getenv("BOUNCER_TEST_POP3_CA");
	d->wrong_ca = getenv("BOUNCER_TEST_POP3_WRONG_CA");
	d->maildir_root = getenv("BOUNCER_TEST_MAILDIR_ROOT");
	d->log = getenv("BOUNCER_TEST_DOVECOT_LOG");
	d->users = getenv("BOUNCER_TEST_POP3_USERS");
	d->port = dovecot_env_int("BOUNCER_TEST_POP3S_PORT");
	d->stls_port = dovecot_env_int("BOUNCER_TEST_POP3_STLS_PORT");
	d->mail_uid = dovecot_env_int("BOUNCER_TEST_MAIL_UID");
	d->mail_gid = dovecot_env_int("BOUNCER_TEST_MAIL_GID");
}

/* 1 when the POP3S server, both CA files and the Maildir root are known
 * and the user list has LOGIN ("user:password"). */
static __attribute__((unused)) int
dovecot_ready(const struct dovecot *d, const char *login)
{
	return d->host != NULL && d->ca != NULL && d->wrong_ca != NULL &&
	    d->maildir_root != NULL && d->port != 0 && d->users != NULL &&
	    strstr(d->users, login) != NULL;
}

/* Drops a message into USER's Maildir the way an MDA does: written in
 * tmp/, handed to the mail user, renamed into new/. */
static __attribute__((unused)) int
dovecot_seed(const struct dovecot *d, const char *user, const char *name,
    const char *data, size_t len)
{
	char tmp[512], dst[512];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/%s/Maildir/tmp/%s", d->maildir_root,
	    user, name);
	snprintf(dst, sizeof(dst), "%s/%s/Maildir/new/%s", d->maildir_root,
	    user, name);
	if ((f = fopen(tmp, "wb")) == NULL)
		return -1;
	if (fwrite(data, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	if (fclose(f) != 0 ||
	    chown(tmp, (uid_t)d->mail_uid, (gid_t)d->mail_gid) != 0)
		return -1;
	return rename(tmp, dst);
}

/* Implicit-TLS options for USER, verified against the test CA, with
 * 5-second connect and command timeouts. */
static __attribute__((unused)) void
dovecot_opts(const struct dovecot *d, struct pop3_options *o,
    const char *mailbox_name, const char *user, const char *pass)
{
	memset(o, 0, sizeof(*o));
	o->mailbox_name = mailbox_name;
	o->host = d->host;
	o->port = d->port;
	o->tls = POP3_TLS_IMPLICIT;
	o->ca_file = d->ca;
	o->username = user;
	o->password = pass;
	o->connect_timeout_ms = 5000;
	o->command_timeout_ms = 5000;
}

/* Connects with O: the login must fail with an error of KIND; ERR keeps
 * the message for further checks. */
static __attribute__((unused)) void
dovecot_refused(const struct pop3_options *o, enum pop3_error kind,
    struct err *err)
{
	struct pop3 *p = pop3_new(o, err);

	CHECK(pop3_connect(p, err) == -1, "connected");
	CHECK_INT(pop3_error_kind(p), kind);
	pop3_free(&p);
}

#endif
