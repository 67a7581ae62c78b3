#!/bin/sh
# includes.sh - checks the direction of every #include "..." under
# internal/ and cmd/ against the layers of the source tree:
#
#   base      the capped buffer, errors, logging, JSON: includes only base
#   record.h  the exchange record: plain data, includes nothing
#   decode    GMime reports -> record; classification: base, record.h
#   store     PostgreSQL: base, record.h
#   pop3      the POP3 client, OAuth2 tokens: base, config
#   config    YAML -> struct config: base, and decode/classify.h to
#             check an operator's classification rules
#   service   the scheduler, the pass, HTTP, webhooks: any part
#   cmd       the programs: any part
#
# So decode knows no network, database or configuration; store and pop3
# never see each other; base knows nothing above it.  Every include names
# its folder ("base/buf.h").  Usage: sh tests/lint/includes.sh [ROOT]
# prints each include at fault as FILE:LINE and exits 1 if there is one.
set -eu
root=${1:-.}
cd "$root"
find internal cmd -name '*.[ch]' | sort | while read -r f; do
	case $f in
	internal/record.[ch]) part=record ;;
	internal/*/*) part=${f#internal/}; part=${part%%/*} ;;
	cmd/*) part=cmd ;;
	*) part=unknown ;;
	esac
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
	while IFS= read -r line; do
		n=${line%%:*}
		inc=$(printf '%s\n' "$line" | sed 's/^[^"]*"\([^"]*\)".*/\1/')
		case $inc in
		record.h) to=record ;;
		*/*) to=${inc%%/*} ;;
		*) to=nofolder ;;
		esac
		ok=0
		case $part:$to in
		*:nofolder) ;;
		base:base | record:record) ok=1 ;;
		decode:base | decode:record | decode:decode) ok=1 ;;
		store:base | store:record | store:store) ok=1 ;;
		pop3:base | pop3:config | pop3:pop3) ok=1 ;;
		config:base | config:config | config:record) ok=1 ;;
		config:decode) [ "$inc" = decode/classify.h ] && ok=1 ;;
		service:base | service:record | service:config | service:decode | \
		    service:store | service:pop3 | service:service) ok=1 ;;
		cmd:*) ok=1 ;;
		esac
		case $inc in
		*/*/*) ok=0 ;;
		esac
		if [ $ok -eq 0 ]; then
			if [ "$to" = nofolder ]; then
				echo "$f:$n: \"$inc\": an include names its folder (base/, decode/, ...)"
			else
				echo "$f:$n: $part may not include \"$inc\" ($to)"
			fi
		fi
	done
done >"${TMPDIR:-/tmp}/includes.$$"
if [ -s "${TMPDIR:-/tmp}/includes.$$" ]; then
	cat "${TMPDIR:-/tmp}/includes.$$"
	rm -f "${TMPDIR:-/tmp}/includes.$$"
	echo "lint: includes against the layers (see tests/lint/includes.sh)"
	exit 1
fi
rm -f "${TMPDIR:-/tmp}/includes.$$"
