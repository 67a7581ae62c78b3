/*
 * metrics.c - counters behind one mutex (updates are rare compared with
 * the network and database work they count) and the Prometheus text
 * renderer.  Mailboxes, error kinds and class/reason pairs are bounded
 * tables, so a hostile message can never grow the label set without end.
 */
#include "service/metrics.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Upper bounds of the pass-duration histogram, seconds. */
static const double buckets[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

static const char *err_names[METRICS_ERR__COUNT] = {
    "connect",
    "tls",
    "auth",
    "protocol",
    "timeout",
    "database",
    "decode",
    "oversize",
    "refused",
    "quarantine",
    "duplicate_uidl",
    "other",
};

struct mb_stats {
	char *name;
	uint64_t fetched, recorded, deleted;
	uint64_t errors[METRICS_ERR__COUNT];
	uint64_t passes_ok, passes_failed;
	uint64_t token_refreshes, token_failures; /* OAuth token endpoint */
	uint64_t hist[NBUCKETS + 1]; /* last: +Inf */
	double dur_sum;
	uint64_t dur_count;
	int64_t last_success;
};

struct reason_stats {
	char *cls, *reason;
	uint64_t n;
};

struct metrics {
	pthread_mutex_t mu;
	char *version;
	struct mb_stats *mb;
	size_t nmb, amb;
	struct reason_stats *rs;
	size_t nrs, ars;
	int db_up;
};

struct metrics *
metrics_new(const char *version)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->mu, NULL);
	m->version = xstrdup(version ? version : "unknown");
	return m;
}

void
metrics_free(struct metrics **mp)
{
	struct metrics *m;

	if (mp == NULL || *mp == NULL)
		return;
	m = *mp;
	for (size_t i = 0; i < m->nmb; i++)
		free(m->mb[i].name);
	for (size_t i = 0; i < m->nrs; i++) {
		free(m->rs[i].cls);
		free(m->rs[i].reason);
	}
	free(m->mb);
	free(m->rs);
	free(m->version);
	pthread_mutex_destroy(&m->mu);
	free(m);
	*mp = NULL;
}

int
metrics_mailbox(struct metrics *m, const char *name)
{
	int idx = -1;

	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nmb; i++)
		if (strcmp(m->mb[i].name, name) == 0) {
			idx = (int)i;
			goto out;
		}
	if (m->nmb >= METRICS_MAX_MAILBOXES)
		goto out;
	if (m->nmb == m->amb) {
		m->amb = m->amb ? m->amb * 2 : 8;
		m->mb = xrealloc(m->mb, m->amb * sizeof(*m->mb));
	}
	memset(&m->mb[m->nmb], 0, sizeof(m->mb[0]));
	m->mb[m->nmb].name = xstrdup(name);
	idx = (int)m->nmb++;
out:
	pthread_mutex_unlock(&m->mu);
	return idx;
}

const char *
metrics_err_kind_name(enum metrics_err_kind kind)
{
	if ((int)kind < 0 || kind >= METRICS_ERR__COUNT)
		return "other";
	return err_names[kind];
}

/* Caller holds the lock; NULL when mb is out of range. */
static struct mb_stats *
mbs(struct metrics *m, int mb)
{
	if (mb < 0 || (size_t)mb >= m->nmb)
		return NULL;
	return &m->mb[mb];
}

#define ADD_FIELD(fn, field) \
	void fn(struct metrics *m, int mb, uint64_t n) \
	{ \
		struct mb_stats *s; \
		pthread_mutex_lock(&m->mu); \
		if ((s = mbs(m, mb)) != NULL) \
			s->field += n; \
		pthread_mutex_unlock(&m->mu); \
	}

ADD_FIELD(metrics_add_fetched, fetched)
ADD_FIELD(metrics_add_recorded, recorded)
ADD_FIELD(metrics_add_deleted, deleted)

#define GET_FIELD(fn, field) \
	uint64_t fn(struct metrics *m, int mb) \
	{ \
		struct mb_stats *s; \
		uint64_t v = 0; \
		pthread_mutex_lock(&m->mu); \
		if ((s = mbs(m, mb)) != NULL) \
			v = s->field; \
		pthread_mutex_unlock(&m->mu); \
		return v; \
	}

GET_FIELD(metrics_get_fetched, fetched)
GET_FIELD(metrics_get_recorded, recorded)
GET_FIELD(metrics_get_deleted, deleted)
GET_FIELD(metrics_get_token_refreshes, token_refreshes)
GET_FIELD(metrics_get_token_failures, token_failures)

void
metrics_add_token(struct metrics *m, int mb, int ok)
{
	struct mb_stats *s;

	pthread_mutex_lock(&m->mu);
	if ((s = mbs(m, mb)) != NULL) {
		if (ok)
			s->token_refreshes++;
		else
			s->token_failures++;
	}
	pthread_mutex_unlock(&m->mu);
}

uint64_t
metrics_get_errors(struct metrics *m, int mb, enum metrics_err_kind kind)
{
	struct mb_stats *s;
	uint64_t v = 0;

	if ((int)kind < 0 || kind >= METRICS_ERR__COUNT)
		return 0;
	pthread_mutex_lock(&m->mu);
	if ((s = mbs(m, mb)) != NULL)
		v = s->errors[kind];
	pthread_mutex_unlock(&m->mu);
	return v;
}

void
metrics_add_error(struct metrics *m, int mb, enum metrics_err_kind kind)
{
	struct mb_stats *s;

	if ((int)kind < 0 || kind >= METRICS_ERR__COUNT)
		kind = METRICS_ERR_OTHER;
	pthread_mutex_lock(&m->mu);
	if ((s = mbs(m, mb)) != NULL)
		s->errors[kind]++;
	pthread_mutex_unlock(&m->mu);
}

/* Label values from the decoder are short static names; anything odd
 * (empty, long, non-printable) is folded into "other". */
static const char *
sane_label(const char *s)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return "other";
	for (; s[n] != '\0'; n++)
		if (n >= 40 || (unsigned char)s[n] < 0x20 ||
		    (unsigned char)s[n] >= 0x7f)
			return "other";
	return s;
}

void
metrics_add_bounce(struct metrics *m, const char *cls, const char *reason)
{
	struct reason_stats *r;

	cls = sane_label(cls);
	reason = sane_label(reason);
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->nrs; i++) {
		r = &m->rs[i];
		if (strcmp(r->cls, cls) == 0 &&
		    strcmp(r->reason, reason) == 0) {
			r->n++;
			goto out;
		}
	}
	if (m->nrs >= METRICS_MAX_REASONS) {
		/* Full: count under the first "other" pair, making one if
		 * the last slot was kept free for it. */
		for (size_t i = 0; i < m->nrs; i++)
			if (strcmp(m->rs[i].reason, "other") == 0) {
				m->rs[i].n++;
				goto out;
			}
		goto out;
	}
	if (m->nrs + 1 == METRICS_MAX_REASONS)
		reason = "other";
	if (m->nrs == m->ars) {
		m->ars = m->ars ? m->ars * 2 : 32;
		m->rs = xrealloc(m->rs, m->ars * sizeof(*m->rs));
	}
	r = &m->rs[m->nrs++];
	r->cls = xstrdup(cls);
	r->reason = xstrdup(reason);
	r->n = 1;
out:
	pthread_mutex_unlock(&m->mu);
}

void
metrics_pass(struct metrics *m, int mb, double seconds, int ok, int64_t when)
{
	struct mb_stats *s;
	size_t i;

	if (seconds < 0)
		seconds = 0;
	pthread_mutex_lock(&m->mu);
	if ((s = mbs(m, mb)) != NULL) {
		for (i = 0; i < NBUCKETS; i++)
			if (seconds <= buckets[i])
				break;
		s->hist[i]++;
		s->dur_sum += seconds;
		s->dur_count++;
		if (ok) {
			s->passes_ok++;
			s->last_success = when;
		} else
			s->passes_failed++;
	}
	pthread_mutex_unlock(&m->mu);
}

int64_t
metrics_last_success(struct metrics *m, int mb)
{
	struct mb_stats *s;
	int64_t v = 0;

	pthread_mutex_lock(&m->mu);
	if ((s = mbs(m, mb)) != NULL)
		v = s->last_success;
	pthread_mutex_unlock(&m->mu);
	return v;
}

void
metrics_set_db_up(struct metrics *m, int up)
{
	pthread_mutex_lock(&m->mu);
	m->db_up = up ? 1 : 0;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_escape_label(struct buf *out, const char *s)
{
	const char *p, *start = s;

	for (p = s; *p != '\0'; p++) {
		const char *rep = NULL;

		if (*p == '\\')
			rep = "\\\\";
		else if (*p == '"')
			rep = "\\\"";
		else if (*p == '\n')
			rep = "\\n";
		if (rep == NULL)
			continue;
		buf_append(out, start, (size_t)(p - start));
		buf_append_str(out, rep);
		start = p + 1;
	}
	buf_append(out, start, (size_t)(p - start));
}

static void
put_mb_counter(struct buf *b, struct metrics *m, const char *name,
    const char *help, size_t off)
{
	buf_appendf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
	for (size_t i = 0; i < m->nmb; i++) {
		uint64_t v = *(const uint64_t *)((const char *)&m->mb[i] + off);

		buf_appendf(b, "%s{mailbox=\"", name);
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\"} %llu\n", (unsigned long long)v);
	}
}

int
metrics_render(struct metrics *m, struct buf *b)
{
	pthread_mutex_lock(&m->mu);
	buf_appendf(b,
	    "# HELP bouncerd_build_info Build information.\n"
	    "# TYPE bouncerd_build_info gauge\n"
	    "bouncerd_build_info{version=\"");
	metrics_escape_label(b, m->version);
	buf_append_str(b, "\"} 1\n");
	buf_appendf(b,
	    "# HELP bouncerd_database_up 1 when the last database "
	    "operation succeeded.\n"
	    "# TYPE bouncerd_database_up gauge\n"
	    "bouncerd_database_up %d\n",
	    m->db_up);
	put_mb_counter(b, m, "bouncerd_messages_fetched_total",
	    "Messages retrieved from the POP3 server.",
	    offsetof(struct mb_stats, fetched));
	put_mb_counter(b, m, "bouncerd_messages_recorded_total",
	    "Messages committed to the database.",
	    offsetof(struct mb_stats, recorded));
	put_mb_counter(b, m, "bouncerd_messages_deleted_total",
	    "Messages deleted from the POP3 server after commit.",
	    offsetof(struct mb_stats, deleted));
	put_mb_counter(b, m, "bouncerd_oauth_token_refreshes_total",
	    "Access tokens obtained from an OAuth token endpoint.",
	    offsetof(struct mb_stats, token_refreshes));
	put_mb_counter(b, m, "bouncerd_oauth_token_failures_total",
	    "Failed requests to an OAuth token endpoint.",
	    offsetof(struct mb_stats, token_failures));
	buf_appendf(b,
	    "# HELP bouncerd_bounces_total Bounce records written, by class "
	    "and reason.\n# TYPE bouncerd_bounces_total counter\n");
	for (size_t i = 0; i < m->nrs; i++) {
		buf_append_str(b, "bouncerd_bounces_total{class=\"");
		metrics_escape_label(b, m->rs[i].cls);
		buf_append_str(b, "\",reason=\"");
		metrics_escape_label(b, m->rs[i].reason);
		buf_appendf(b, "\"} %llu\n", (unsigned long long)m->rs[i].n);
	}
	buf_appendf(b,
	    "# HELP bouncerd_errors_total Errors by mailbox and kind.\n"
	    "# TYPE bouncerd_errors_total counter\n");
	for (size_t i = 0; i < m->nmb; i++)
		for (int k = 0; k < METRICS_ERR__COUNT; k++) {
			if (m->mb[i].errors[k] == 0)
				continue;
			buf_append_str(b, "bouncerd_errors_total{mailbox=\"");
			metrics_escape_label(b, m->mb[i].name);
			buf_appendf(b, "\",kind=\"%s\"} %llu\n", err_names[k],
			    (unsigned long long)m->mb[i].errors[k]);
		}
	buf_appendf(b,
	    "# HELP bouncerd_passes_total Mailbox passes by result.\n"
	    "# TYPE bouncerd_passes_total counter\n");
	for (size_t i = 0; i < m->nmb; i++) {
		buf_append_str(b, "bouncerd_passes_total{mailbox=\"");
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\",result=\"ok\"} %llu\n",
		    (unsigned long long)m->mb[i].passes_ok);
		buf_append_str(b, "bouncerd_passes_total{mailbox=\"");
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\",result=\"error\"} %llu\n",
		    (unsigned long long)m->mb[i].passes_failed);
	}
	buf_appendf(b,
	    "# HELP bouncerd_pass_duration_seconds Duration of mailbox "
	    "passes.\n# TYPE bouncerd_pass_duration_seconds histogram\n");
	for (size_t i = 0; i < m->nmb; i++) {
		uint64_t cum = 0;

		for (size_t k = 0; k <= NBUCKETS; k++) {
			cum += m->mb[i].hist[k];
			buf_appendf(b,
			    "bouncerd_pass_duration_seconds_bucket{mailbox=\"");
			metrics_escape_label(b, m->mb[i].name);
			if (k < NBUCKETS)
				buf_appendf(b, "\",le=\"%g\"} %llu\n",
				    buckets[k], (unsigned long long)cum);
			else
				buf_appendf(b, "\",le=\"+Inf\"} %llu\n",
				    (unsigned long long)cum);
		}
		buf_append_str(b,
		    "bouncerd_pass_duration_seconds_sum{mailbox=\"");
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\"} %.6f\n", m->mb[i].dur_sum);
		buf_appendf(b,
		    "bouncerd_pass_duration_seconds_count{mailbox=\"");
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\"} %llu\n",
		    (unsigned long long)m->mb[i].dur_count);
	}
	buf_appendf(b,
	    "# HELP bouncerd_last_success_timestamp_seconds Unix time of "
	    "the last successful pass.\n"
	    "# TYPE bouncerd_last_success_timestamp_seconds gauge\n");
	for (size_t i = 0; i < m->nmb; i++) {
		buf_appendf(b,
		    "bouncerd_last_success_timestamp_seconds{mailbox=\"");
		metrics_escape_label(b, m->mb[i].name);
		buf_appendf(b, "\"} %lld\n", (long long)m->mb[i].last_success);
	}
	pthread_mutex_unlock(&m->mu);
	return b->truncated ? -1 : 0;
}
