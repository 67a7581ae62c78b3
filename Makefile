# bouncerd - build, test and tooling.  Plain GNU make; every target that
# needs Debian packages installs them first through docker/deps.sh (as root)
# or prints the apt-get command to run.

PREFIX   ?= /usr/local
DESTDIR  ?=
B        ?= build
CC       ?= cc
CFLAGS   ?= -O2 -g
VERSION  := 0.1.0
PKGS     := libcurl libpq yaml-0.1 gmime-3.0
SHARED   ?= $(abspath ../shared)
FUZZ_SECONDS ?= 600

# Dependencies first: pkg-config below needs the -dev packages.
NODEPS_GOALS := clean help image
ifneq ($(filter-out $(NODEPS_GOALS),$(or $(MAKECMDGOALS),all)),)
DEPS_RC := $(shell sh docker/deps.sh build 1>&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error build dependencies are missing (see the message above))
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter \
	-Wformat=2 -Wno-format-nonliteral -Wno-format-truncation -Iinternal -Itests \
	-DBOUNCERD_VERSION='"$(VERSION)"' $(PKG_CFLAGS) $(CFLAGS) $(EXTRA_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(EXTRA_LDFLAGS)
LIBS = $(PKG_LIBS) -lpthread -lm

LIB_SRC   := $(sort $(wildcard internal/*.c internal/*/*.c) internal/decode/classify_rules_gen.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/%.o)
LIB       := $(B)/libbouncer.a
BINS      := $(B)/bin/bouncerd $(B)/bin/bounce-parse
UNIT      := $(patsubst %.c,$(B)/%,$(wildcard tests/unit/test_*.c))
INTEG     := $(patsubst %.c,$(B)/%,$(wildcard tests/integration/test_*.c))
BENCH     := $(patsubst %.c,$(B)/%,$(wildcard tests/bench/bench_*.c)) $(B)/tests/bench/gmime_walk
HELPERS   := $(patsubst %.c,$(B)/%,$(wildcard tests/helpers/*.c))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

CLANG_FORMAT ?= clang-format
FORMAT_FILES = $(wildcard internal/*.[ch] internal/*/*.[ch] cmd/*/*.c tests/*.h tests/*/*.c tests/*/*.h)
BANNED = sprintf|strcpy|strcat|strtok|atoi|gets

.PHONY: all tests check check-all interop test asan fuzz bench bench-compare bench-scale lint format install clean demo \
	demo-stop corpus-score help image
.SUFFIXES:
.SECONDARY:

all: $(BINS)

help:
	@echo "targets: all check asan lint fuzz bench corpus-score demo demo-stop install clean image"

Q = $(if $(V),,@)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(V),,echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The classifier's rule table, compiled in as text (see the script).
internal/decode/classify_rules_gen.c: internal/decode/classify_rules.txt internal/decode/classify_rules_embed.sh
	$(Q)sh internal/decode/classify_rules_embed.sh > $@.tmp && mv $@.tmp $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(B)/bin/%: $(B)/cmd/%/main.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

$(B)/tests/%: $(B)/tests/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(V),,echo "  LD      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LIBS)

tests: $(BINS) $(UNIT) $(INTEG) $(BENCH) $(HELPERS)

# The whole suite: unit + integration against real PostgreSQL and Dovecot
# started (and stopped, also on failure) by tests/run.sh.
check: tests
	@sh docker/deps.sh test
	@bash tests/run.sh $(B)
test: check

# bouncerd against the POP3 servers of Debian's archive (Dovecot, GNU
# Mailutils, popa3d), each run from its unpacked package files
# (tests/interop/run.sh); check-all is check followed by interop.
interop: tests
	@sh docker/deps.sh test
	@bash tests/interop/run.sh $(B)

check-all:
	@$(MAKE) --no-print-directory check
	@$(MAKE) --no-print-directory interop

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	@$(MAKE) --no-print-directory B=build-asan CFLAGS="-O1 -g" \
	    EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    EXTRA_LDFLAGS="-fsanitize=address,undefined" check

# libFuzzer targets, each run for FUZZ_SECONDS (default 600).
# FUZZ=dsn runs one target only.
fuzz:
	@sh docker/deps.sh test
	@bash tests/fuzz/run.sh "$(FUZZ_SECONDS)" "$(FUZZ)"

bench: tests
	@sh docker/deps.sh test
	@bash tests/bench/run.sh $(B)

# bench_e2e and bench_dsn of BEFORE (default: the commit before the
# layered layout) and of this tree, alternating, RUNS (3) rounds; prints a
# table of the key figures.
bench-compare: tests
	@sh docker/deps.sh test
	@bash tests/bench/compare.sh $(B)

# The suppression list, change feed and ledger at ROWS ledger and bounce
# rows (default 10,000,000; prints one "scale:" line), on a throwaway
# PostgreSQL.  Takes tens of minutes at the default size.
bench-scale: $(B)/tests/bench/scale
	@sh docker/deps.sh test
	@bash tests/bench/scale.sh $(B)

corpus-score: $(B)/bin/bounce-parse
	@test -d "$(SHARED)/corpus/eml" || { echo "corpus not found at $(SHARED)/corpus (set SHARED=...)"; exit 1; }
	$(B)/bin/bounce-parse --format tsv $(SHARED)/corpus/eml/*.eml > $(B)/corpus-predictions.tsv
	python3 $(SHARED)/corpus/score.py $(SHARED)/corpus/expected.tsv $(B)/corpus-predictions.tsv

lint:
	@sh docker/deps.sh test
	@if grep -nE '\b($(BANNED))[[:space:]]*\(' $(FORMAT_FILES); then \
	    echo "lint: banned function used (see above)"; exit 1; fi
	@$(CLANG_FORMAT) --dry-run -Werror $(FORMAT_FILES)
	@sh tests/lint/includes.sh
	@echo "lint: ok"

format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

# Container images with podman or docker, whichever runs here (installs
# podman as root when neither does): bouncerd:$(VERSION) and the demo
# stack's Dovecot, on a Debian base made locally when no registry answers.
image:
	@sh docker/images.sh $(VERSION)

demo: all
	@bash tests/demo.sh start

demo-stop:
	@bash tests/demo.sh stop

install: $(BINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/bouncerd/schema \
	    $(DESTDIR)$(PREFIX)/share/doc/bouncerd
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 schema/*.sql $(DESTDIR)$(PREFIX)/share/bouncerd/schema/
	install -m 644 config/bouncerd.yaml README.md $(DESTDIR)$(PREFIX)/share/doc/bouncerd/

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(B) -name '*.d' 2>/dev/null)
