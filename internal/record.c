/*
 * record.c - names of the exchange record's kinds and classes, and the
 * lookup of a returned original's header (record.h).
 */
#include "record.h"

const char *
record_kind_name(enum record_kind kind)
{
	switch (kind) {
	case RECORD_KIND_BOUNCE:
		return "bounce";
	case RECORD_KIND_DELAYED:
		return "delayed";
	case RECORD_KIND_DELIVERED:
		return "delivered";
	case RECORD_KIND_COMPLAINT:
		return "complaint";
	case RECORD_KIND_AUTOREPLY:
		return "autoreply";
	case RECORD_KIND_UNKNOWN:
		break;
	}
	return "unknown";
}

const char *
record_class_name(enum record_class cls)
{
	switch (cls) {
	case RECORD_CLASS_HARD:
		return "hard";
	case RECORD_CLASS_SOFT:
		return "soft";
	case RECORD_CLASS_COMPLAINT:
		return "complaint";
	case RECORD_CLASS_AUTOREPLY:
		return "autoreply";
	case RECORD_CLASS_DELIVERED:
		return "delivered";
	case RECORD_CLASS_UNKNOWN:
		break;
	}
	return "unknown";
}

/* ASCII case-blind equality, whatever the locale. */
static int
same_name(const char *a, const char *b)
{
	for (;; a++, b++) {
		unsigned char x = (unsigned char)*a, y = (unsigned char)*b;

		if (x >= 'A' && x <= 'Z')
			x += 'a' - 'A';
		if (y >= 'A' && y <= 'Z')
			y += 'a' - 'A';
		if (x != y)
			return 0;
		if (x == '\0')
			return 1;
	}
}

const char *
record_orig_header(const struct record *rec, const char *name)
{
	if (rec == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < rec->norig_headers; i++)
		if (same_name(rec->orig_headers[i].name, name))
			return rec->orig_headers[i].value;
	return NULL;
}
