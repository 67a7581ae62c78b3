#!/usr/bin/env bash
# test_config_cli.sh - bouncerd's command line: --help, --version,
# --check-config on good and bad files (exit status, masked secrets, every
# error listed), options not in this build, usage errors.
set -u
SRC=${BOUNCER_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${BOUNCER_BUILD:-$SRC/build}/bin/bouncerd
FIX=$SRC/tests/fixtures/config
if [ ! -x "$BIN" ]; then
	echo "SKIP bouncerd cli: $BIN not built"
	exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

ok() { echo "PASS $1"; }
bad() { echo "FAIL $1: $2"; }

# case NAME WANT_RC CMD... : runs CMD, output in $TMP/out, $TMP/err
run() {
	local name=$1 want=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [ "$rc" != "$want" ]; then
		bad "$name" "exit status $rc, want $want; stderr: $(head -c 500 "$TMP/err")"
		return 1
	fi
	return 0
}

# has NAME FILE TEXT... : every TEXT is in FILE (fixed strings)
has() {
	local name=$1 file=$2 t
	shift 2
	for t in "$@"; do
		grep -qF -- "$t" "$file" ||
		    { bad "$name" "'$t' not in output: $(head -c 800 "$file")"; return 1; }
	done
}
# hasnt NAME FILE TEXT... : no TEXT is in FILE
hasnt() {
	local name=$1 file=$2 t
	shift 2
	for t in "$@"; do
		! grep -qF -- "$t" "$file" || { bad "$name" "'$t' must not be in the output"; return 1; }
	done
}

n="bouncerd --help"
run "$n" 0 "$BIN" --help &&
    has "$n" "$TMP/out" "usage: bouncerd" "--check-config" "/etc/bouncerd/bouncerd.yaml" && ok "$n"

n="bouncerd -h"
run "$n" 0 "$BIN" -h && has "$n" "$TMP/out" "usage: bouncerd" && ok "$n"

n="bouncerd --version"
run "$n" 0 "$BIN" --version &&
    has "$n" "$TMP/out" "bouncerd 0." "libcurl: libcurl/" "libpq: " "libyaml: 0." "gmime: 3." && ok "$n"

n="--check-config on a valid file prints it with secrets masked"
run "$n" 0 "$BIN" -c "$FIX/full.yaml" --check-config &&
    has "$n" "$TMP/out" "configuration is valid" \
	"url: \"user='bouncer' password='********' dbname='bouncer' host='127.0.0.1' port='5432' sslmode='disable'\"" \
	'client_secret: "********"' '  - name: "o365"' &&
    hasnt "$n" "$TMP/out" "s3cret" 'word"' && ok "$n"

n="a secret file others can read is loaded with a warning"
printf 'database:\n  url: postgresql://u@localhost/db\nmailboxes:\n  - name: m\n    host: h\n    username: u\n    password_file: %s\n' "$TMP/pw" >"$TMP/perm.yaml"
printf 'good\n' >"$TMP/pw"
chmod 644 "$TMP/pw"
run "$n" 0 "$BIN" -c "$TMP/perm.yaml" --check-config &&
    has "$n" "$TMP/err" "warning: $TMP/perm.yaml:7:20: mailboxes[0].password_file: $TMP/pw is readable by group and others (mode 0644); chmod 600 it" && ok "$n"
n="a secret file only its owner reads gives no warning"
chmod 600 "$TMP/pw"
run "$n" 0 "$BIN" -c "$TMP/perm.yaml" --check-config &&
    hasnt "$n" "$TMP/err" "warning:" && ok "$n"
n="a secret file with a line break inside is refused"
printf 'two\nlines\n' >"$TMP/pw"
run "$n" 1 "$BIN" -c "$TMP/perm.yaml" --check-config &&
    has "$n" "$TMP/err" "mailboxes[0].password_file: $TMP/pw: the secret holds a line break" && ok "$n"

n="--check-config output is itself a valid config"
"$BIN" -c "$FIX/full.yaml" --check-config >"$TMP/dump.yaml" 2>/dev/null
run "$n" 0 "$BIN" --config "$TMP/dump.yaml" --check-config &&
    tail -n +2 "$TMP/dump.yaml" >"$TMP/a" && tail -n +2 "$TMP/out" >"$TMP/b" &&
    { cmp -s "$TMP/a" "$TMP/b" || { bad "$n" "dump differs after reload"; false; }; } && ok "$n"

n="--check-config lists every error with file:line:col and exits 1"
cat >"$TMP/bad.yaml" <<'YAML'
database:
  url: postgresql://u:TOPSECRET@h/d
workers: 0
mailboxes:
  - name: m1
    host: pop.example.com
    port: 70000
    username: u
    password: TOPSECRET
  - name: m1
    host: pop.example.com
    username: u
    password_file: /nonexistent/pw
    colour: blue
YAML
run "$n" 1 "$BIN" -c "$TMP/bad.yaml" --check-config &&
    has "$n" "$TMP/err" \
	"$TMP/bad.yaml:3:10: workers: 0 is out of range (1..64)" \
	"$TMP/bad.yaml:7:11: mailboxes[0].port: 70000 is out of range (1..65535)" \
	"$TMP/bad.yaml:10:11: mailboxes[1].name: duplicate mailbox name 'm1' (first at line 5)" \
	"$TMP/bad.yaml:13:20: mailboxes[1].password_file: /nonexistent/pw: No such file or directory" \
	"$TMP/bad.yaml:14:5: mailboxes[1].colour: unknown key" \
	"bouncerd: $TMP/bad.yaml: 5 errors" &&
    hasnt "$n" "$TMP/err" "TOPSECRET" && hasnt "$n" "$TMP/out" "TOPSECRET" && ok "$n"

n="--check-config with an unset environment variable"
run "$n" 1 env -u BOUNCERD_DATABASE_URL -u BOUNCERD_POP3_PASSWORD "$BIN" -c "$SRC/config/bouncerd.yaml" --check-config &&
    has "$n" "$TMP/err" "bouncerd.yaml:19:8: database.url: environment variable BOUNCERD_DATABASE_URL is not set" && ok "$n"

n="the example config is valid with its variables set"
run "$n" 0 env BOUNCERD_DATABASE_URL=postgresql://b:dbsecret@localhost/b BOUNCERD_POP3_PASSWORD=popsecret \
    "$BIN" -c "$SRC/config/bouncerd.yaml" --check-config &&
    hasnt "$n" "$TMP/out" "dbsecret" "popsecret" && ok "$n"

n="--check-config on a missing file"
run "$n" 1 "$BIN" -c "$TMP/none.yaml" --check-config &&
    has "$n" "$TMP/err" "$TMP/none.yaml: No such file or directory" && ok "$n"

n="-c defaults to /etc/bouncerd/bouncerd.yaml"
if [ -e /etc/bouncerd/bouncerd.yaml ]; then
	echo "SKIP $n: /etc/bouncerd/bouncerd.yaml exists here"
else
	run "$n" 1 "$BIN" --check-config &&
	    has "$n" "$TMP/err" "/etc/bouncerd/bouncerd.yaml: No such file or directory" && ok "$n"
fi

n="--check-config on a YAML bomb"
run "$n" 1 "$BIN" -c "$FIX/bomb.yaml" --check-config &&
    has "$n" "$TMP/err" "bomb.yaml:1:4: anchors and aliases are not allowed" "bomb.yaml: 41 errors" &&
    ok "$n"

n="--check-config on binary junk"
head -c 4096 /dev/urandom >"$TMP/junk.yaml"
run "$n" 1 "$BIN" -c "$TMP/junk.yaml" --check-config && has "$n" "$TMP/err" "junk.yaml" && ok "$n"

n="unknown option"
run "$n" 2 "$BIN" --frobnicate && has "$n" "$TMP/err" "unknown option --frobnicate" && ok "$n"

n="-c without an argument"
run "$n" 2 "$BIN" -c && has "$n" "$TMP/err" "-c needs an argument" && ok "$n"

n="stray argument"
run "$n" 2 "$BIN" -c "$FIX/full.yaml" extra && has "$n" "$TMP/err" "unexpected argument extra" && ok "$n"

n="tls: none is logged as a warning"
cat >"$TMP/plain.yaml" <<'YAML'
database:
  url: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
mailboxes:
  - name: plain
    host: 127.0.0.1
    tls: none
    username: u
    password: p
YAML
run "$n" 1 "$BIN" -c "$TMP/plain.yaml" --once &&
    has "$n" "$TMP/err" "warn mailbox uses plaintext POP3 (tls: none)" "mailbox=plain" &&
    ! grep -qF -- 'password: p' "$TMP/err" && ok "$n"
