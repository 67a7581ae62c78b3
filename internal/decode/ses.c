/*
 * ses.c - Amazon SES notifications (JSON, as SNS or an event publisher
 * sends them, inside a text body): bounced, complained and delivered
 * recipients with their action, status, diagnostic, remote MTA and time.
 * Read with the strict JSON reader (base/json.h) from the first '{' that
 * opens a notification; a body cut short is read up to the cut.
 */
#include "decode/ses.h"

#include <stdlib.h>
#include <string.h>

#include "base/json.h"

#define SES_TRIES 8 /* '{' tried as the start of the notification */

/* What the notification says, each the first string member of its name
 * in document order, at any depth. */
enum ses_key {
	K_NOTIFICATION_TYPE,
	K_EVENT_TYPE,
	K_BOUNCE_TYPE,
	K_BOUNCE_SUBTYPE,
	K_DELAY_TYPE,
	K_FEEDBACK_TYPE,
	K_SMTP_RESPONSE,
	K_REMOTE_MTA_IP,
	K_REPORTING_MTA,
	K_TIMESTAMP,
	K_COUNT
};

static const struct {
	const char *name;
	size_t size; /* bytes kept, NUL included */
} ses_keys[K_COUNT] = {
    [K_NOTIFICATION_TYPE] = {"notificationType", 32},
    [K_EVENT_TYPE] = {"eventType", 32},
    [K_BOUNCE_TYPE] = {"bounceType", 64},
    [K_BOUNCE_SUBTYPE] = {"bounceSubType", 64},
    [K_DELAY_TYPE] = {"delayType", 64},
    [K_FEEDBACK_TYPE] = {"complaintFeedbackType", DSN_DIAG_CAP},
    [K_SMTP_RESPONSE] = {"smtpResponse", DSN_DIAG_CAP},
    [K_REMOTE_MTA_IP] = {"remoteMtaIp", DSN_DIAG_CAP},
    [K_REPORTING_MTA] = {"reportingMTA", DSN_DIAG_CAP},
    [K_TIMESTAMP] = {"timestamp", DSN_DIAG_CAP},
};

/* The recipient lists, by notification type. */
enum ses_list { L_BOUNCED, L_COMPLAINED, L_DELIVERED, L_COUNT };
static const char *const ses_lists[L_COUNT] = {"bouncedRecipients",
    "complainedRecipients", "recipients"};

/* A member to find: a string (copied into str, size bytes) or an array
 * (its view in arr). */
struct grab {
	const char *name;
	char *str;
	size_t size;
	struct json_val *arr;
	int found;
};

/* Fills every grab not yet found from the members of container c and of
 * the containers within it, in document order (a member's name is read
 * before its value).  Stops at the end of the text or where it breaks. */
static void
collect(const struct json_val *c, struct grab *g, size_t ng)
{
	struct json_val k, v;
	size_t pos = 0, i;

	while (json_next(c, &pos, &k, &v) == 1) {
		for (i = 0; c->type == JSON_OBJECT && i < ng; i++) {
			if (g[i].found || !json_str_eq(&k, g[i].name))
				continue;
			if (g[i].str != NULL && v.type == JSON_STRING) {
				json_strcpy(&v, g[i].str, g[i].size);
				g[i].found = 1;
			} else if (g[i].arr != NULL && v.type == JSON_ARRAY) {
				*g[i].arr = v;
				g[i].found = 1;
			}
		}
		if (v.type == JSON_OBJECT || v.type == JSON_ARRAY)
			collect(&v, g, ng);
	}
}

struct ses_doc {
	char *str[K_COUNT]; /* "" when absent */
	int found[K_COUNT];
	struct json_val list[L_COUNT];
	int have_list[L_COUNT];
};

static void
doc_free(struct ses_doc *d)
{
	size_t i;

	for (i = 0; i < K_COUNT; i++)
		free(d->str[i]);
}

/* Reads the notification that opens at the first '{' of s[0..n) able to
 * hold one (a type named).  1 and *d filled, else 0. */
static int
doc_read(const char *s, size_t n, struct ses_doc *d)
{
	struct grab g[K_COUNT + L_COUNT];
	const char *p = memchr(s, '{', n);
	size_t i, tries;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < K_COUNT; i++)
		d->str[i] = xcalloc(1, ses_keys[i].size);
	for (tries = 0; p != NULL && tries < SES_TRIES; tries++) {
		struct json_val root;

		memset(g, 0, sizeof(g));
		for (i = 0; i < K_COUNT; i++) {
			g[i].name = ses_keys[i].name;
			g[i].str = d->str[i];
			g[i].size = ses_keys[i].size;
			d->str[i][0] = '\0';
		}
		for (i = 0; i < L_COUNT; i++) {
			g[K_COUNT + i].name = ses_lists[i];
			g[K_COUNT + i].arr = &d->list[i];
		}
		if (json_open(p, n - (size_t)(p - s), &root) == 0)
			collect(&root, g, K_COUNT + L_COUNT);
		if (g[K_NOTIFICATION_TYPE].found || g[K_EVENT_TYPE].found) {
			for (i = 0; i < K_COUNT; i++)
				d->found[i] = g[i].found;
			for (i = 0; i < L_COUNT; i++)
				d->have_list[i] = g[K_COUNT + i].found;
			return 1;
		}
		p = memchr(p + 1, '{', n - (size_t)(p + 1 - s));
	}
	return 0;
}

/* With no diagnosticCode, SES's own classification is the diagnostic:
 * "bounceType/bounceSubType" (or the delayType), as its notifications
 * write them ("Permanent/OnAccountSuppressionList"). */
static void
ses_type(struct dsn_report *r, struct record_rcpt *rc, const struct ses_doc *d)
{
	const char *t = d->str[K_BOUNCE_TYPE], *st = d->str[K_BOUNCE_SUBTYPE];

	if (d->found[K_BOUNCE_TYPE])
		rc->diagnostic = dsn_keep(r,
		    xasprintf("%s%s%s", t, st[0] != '\0' ? "/" : "", st));
	else if (d->found[K_DELAY_TYPE])
		rc->diagnostic =
		    dsn_keep(r, xasprintf("%s", d->str[K_DELAY_TYPE]));
}

/* "recipients":["a@b", ...] of a delivery: the address, the notification's
 * SMTP response and remote MTA. */
static void
ses_delivered(struct dsn_report *r, const struct json_val *v,
    const struct ses_doc *d)
{
	char v8[DSN_DIAG_CAP], a[DSN_ADDR_MAX];
	struct record_rcpt *rc;

	if (json_strcpy(v, v8, sizeof(v8)) != 0 ||
	    !dsn_first_addr(v8, strlen(v8), a) ||
	    (rc = dsn_add_rcpt(r)) == NULL)
		return;
	rc->final_recipient = dsn_keep(r, xstrdup(a));
	rc->action = "delivered";
	if (d->found[K_SMTP_RESPONSE])
		rc->diagnostic = dsn_keep_clean(r, d->str[K_SMTP_RESPONSE],
		    strlen(d->str[K_SMTP_RESPONSE]));
	if (d->found[K_REMOTE_MTA_IP])
		rc->remote_mta = dsn_keep_clean(r, d->str[K_REMOTE_MTA_IP],
		    strlen(d->str[K_REMOTE_MTA_IP]));
}

/* One {"emailAddress": ...} of a bounce or complaint. */
static void
ses_recipient(struct dsn_report *r, const struct json_val *obj,
    const struct ses_doc *d)
{
	enum { G_ADDR, G_ACTION, G_STATUS, G_DIAG, G_COUNT };
	static const char *const names[G_COUNT] = {"emailAddress", "action",
	    "status", "diagnosticCode"};
	char v[G_COUNT][DSN_DIAG_CAP], a[DSN_ADDR_MAX], st[16];
	struct grab g[G_COUNT];
	struct record_rcpt *rc;
	size_t i;

	memset(g, 0, sizeof(g));
	for (i = 0; i < G_COUNT; i++) {
		g[i].name = names[i];
		g[i].str = v[i];
		g[i].size = sizeof(v[i]);
	}
	collect(obj, g, G_COUNT);
	if (!g[G_ADDR].found ||
	    !dsn_first_addr(v[G_ADDR], strlen(v[G_ADDR]), a) ||
	    (rc = dsn_add_rcpt(r)) == NULL)
		return;
	rc->final_recipient = dsn_keep(r, xstrdup(a));
	if (r->rec.kind == RECORD_KIND_COMPLAINT) {
		if (d->found[K_FEEDBACK_TYPE])
			rc->feedback_type =
			    dsn_keep_clean(r, d->str[K_FEEDBACK_TYPE],
			        strlen(d->str[K_FEEDBACK_TYPE]));
		else
			rc->feedback_type = "abuse";
		return;
	}
	if (g[G_ACTION].found)
		rc->action =
		    dsn_keep_clean(r, v[G_ACTION], strlen(v[G_ACTION]));
	if (g[G_STATUS].found &&
	    dsn_find_status(v[G_STATUS], strlen(v[G_STATUS]), st))
		rc->status = dsn_keep(r, xstrdup(st));
	if (g[G_DIAG].found)
		rc->diagnostic =
		    dsn_keep_clean(r, v[G_DIAG], strlen(v[G_DIAG]));
	else
		ses_type(r, rc, d);
	if (rc->action == NULL)
		rc->action = "failed";
}

/* Reporting-MTA ("dsn; host") and the time of every recipient. */
static void
ses_report(struct dsn_report *r, const struct ses_doc *d)
{
	const char *v = d->str[K_REPORTING_MTA];
	GDateTime *dt;
	size_t k;

	if (d->found[K_REPORTING_MTA] && r->rec.reporting_mta == NULL) {
		const char *semi = strchr(v, ';');

		v = semi ? semi + 1 : v;
		r->rec.reporting_mta = dsn_keep_clean(r, v, strlen(v));
	}
	if (!d->found[K_TIMESTAMP])
		return;
	dt = g_date_time_new_from_iso8601(d->str[K_TIMESTAMP], NULL);
	if (dt == NULL)
		return;
	for (k = 0; k < r->rec.nrcpts; k++)
		r->rec.rcpts[k].date = g_date_time_to_unix(dt);
	g_date_time_unref(dt);
}

int
dsn_ses_json(struct dsn_report *r, const char *s, size_t n)
{
	struct ses_doc d;
	const char *type;
	struct json_val v;
	size_t pos = 0;
	enum ses_list list;
	int rc = 0;

	if (!doc_read(s, n, &d))
		goto out;
	type = d.found[K_NOTIFICATION_TYPE] ? d.str[K_NOTIFICATION_TYPE]
	                                    : d.str[K_EVENT_TYPE];
	r->rec.mta = "amazonses";
	if (strcmp(type, "Bounce") == 0) {
		list = L_BOUNCED;
		r->rec.kind = RECORD_KIND_BOUNCE;
	} else if (strcmp(type, "Complaint") == 0) {
		list = L_COMPLAINED;
		r->rec.kind = RECORD_KIND_COMPLAINT;
	} else if (strcmp(type, "Delivery") == 0) {
		list = L_DELIVERED;
		r->rec.kind = RECORD_KIND_DELIVERED;
	} else
		goto out;
	if (!d.have_list[list])
		goto out;
	while (json_next(&d.list[list], &pos, NULL, &v) == 1) {
		if (v.type == JSON_STRING)
			ses_delivered(r, &v, &d);
		else if (v.type == JSON_OBJECT)
			ses_recipient(r, &v, &d);
	}
	ses_report(r, &d);
	rc = r->rec.nrcpts > 0;
out:
	doc_free(&d);
	return rc;
}
