# sluice — plain Makefile.  `make run` and `make check` are the two commands
# the README promises; both first make sure the build packages are present.
#
# Objects go to $(BUILD) (default build/); the sanitizer targets reuse this
# file with BUILD=build/asan or build/tsan and extra flags.

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
SAN      ?=
OPT      ?= -O2

PKGS      := libevent libevent_pthreads libevent_openssl jansson inih libsystemd zlib libzstd relp openssl libisal libnats
TEST_PKGS := check

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wpointer-arith -Wformat=2 -Wno-unused-parameter
# CI builds with -Werror (CI=true in its environment); WERROR=1 forces it.
ifneq ($(filter true 1,$(CI) $(WERROR)),)
WARN += -Werror
endif

PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
CPPFLAGS += -Iinclude -Isrc -D_GNU_SOURCE
CFLAGS   ?= -g
ALL_CFLAGS = -std=gnu11 $(OPT) $(CFLAGS) $(WARN) $(SAN) $(PKG_CFLAGS) -pthread -MMD -MP
ifeq ($(SAN),)
ALL_CFLAGS += $(HARDEN)
LDHARDEN := -pie -Wl,-z,relro,-z,now
endif
ALL_LDFLAGS = $(LDFLAGS) $(SAN) $(LDHARDEN) -pthread

LIB_SRC  := $(filter-out src/daemon/main.c src/cli/%,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRC := $(wildcard tests/check_*.c)
UNIT_BIN := $(UNIT_SRC:tests/%.c=$(BUILD)/tests/%)
INTEG_SRC := $(wildcard tests/integration/check_*.c)
INTEG_BIN := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
INTEG_LIB := $(BUILD)/obj/tests/harness.o $(BUILD)/obj/tests/peers.o $(BUILD)/obj/tests/nats_util.o
# Fuzz targets (tests/fuzz/fuzz_NAME.c): `make check` replays their seed and
# regression inputs through a gcc build linked with tests/fuzz/replay.c.
FUZZ_NAMES  := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay_%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

.PHONY: all deps run check check-only test-bins asan tsan install clean format bench bench-nats
all: $(BUILD)/sluiced $(BUILD)/sluice

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libsluice.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/sluiced: $(BUILD)/obj/daemon/main.o $(BUILD)/libsluice.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The operator's command (docs/sluice.1): links the config loader.
$(BUILD)/sluice: $(BUILD)/obj/cli/sluice.o $(BUILD)/libsluice.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(UNIT_BIN): $(BUILD)/tests/%: tests/%.c $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(BUILD)/libsluice.a $(PKG_LIBS) $(CHECK_LIBS)

$(INTEG_LIB): $(BUILD)/obj/tests/%.o: tests/integration/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/tests/integration/%: tests/integration/%.c $(INTEG_LIB) $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -o $@ $< $(INTEG_LIB) $(BUILD)/libsluice.a $(PKG_LIBS) $(CHECK_LIBS)

# The power-loss test's LD_PRELOAD shim (tests/integration/plshim.c): tests
# only, never linked into sluiced; not instrumented (it forwards to the
# sanitizer's interceptors, which come next in the library list).
PLSHIM := $(BUILD)/tests/libplshim.so
$(PLSHIM): tests/integration/plshim.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=gnu11 -O2 -g $(WARN) -fPIC -shared -o $@ $< -ldl

$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CHECK_CFLAGS) -DFUZZ_NAME='"$*"' -o $@ tests/fuzz/fuzz_$*.c \
	  tests/fuzz/replay.c $(BUILD)/libsluice.a $(PKG_LIBS) $(CHECK_LIBS)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libsluice.a $(PKG_LIBS)

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -std=gnu11 -O2 -g $(WARN) -pthread -o $@ $< $(BUILD)/libsluice.a $(PKG_LIBS) -lm

$(BENCH_BIN): $(BUILD)/libsluice.a

test-bins: $(BUILD)/sluiced $(BUILD)/sluice $(UNIT_BIN) $(INTEG_BIN) $(FUZZ_REPLAY) $(PLSHIM)

# Runs every suite even if one fails, then fails if any did.
# Sanitizer builds run several times slower: their deadlines are scaled.
# The systemd test runs the real units under a systemd user manager; not in
# the sanitizer runs (SAN set), which test the daemon, not the units.
SYSTEM_TESTS := $(if $(SAN),,tests/systemd/check_systemd.sh tests/deb/check_deb.sh)
check-only: test-bins
	@SLUICED=$(abspath $(BUILD)/sluiced) SLUICE_TOP=$(CURDIR) $(TEST_ENV) \
	  sh scripts/run-tests.sh $(UNIT_BIN) $(FUZZ_REPLAY) $(INTEG_BIN) $(SYSTEM_TESTS)

check:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory check-only

run: deps
	@$(MAKE) --no-print-directory all
	@mkdir -p var/log
	$(BUILD)/sluiced -c conf/sluice.conf

asan:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
	  TEST_ENV="CK_TIMEOUT_MULTIPLIER=3 SLUICE_TEST_LOAD=0.2 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" check-only

tsan:
	@sh scripts/deps.sh --test
	@$(MAKE) --no-print-directory BUILD=build/tsan OPT=-O1 \
	  TEST_ENV="CK_TIMEOUT_MULTIPLIER=3 SLUICE_TEST_LOAD=0.2 TSAN_OPTIONS=suppressions=$(CURDIR)/tests/tsan.supp" \
	  SAN="-fsanitize=thread" check-only

# libFuzzer (clang): every target runs FUZZ_SECONDS on its corpus; a crash
# is saved under build/fuzz/ and fails the run (tests/fuzz/run.sh says how to
# keep it as a regression input).  The library is rebuilt with coverage
# instrumentation, ASan and UBSan in build/fuzz.
FUZZ_SECONDS ?= 10
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
.PHONY: fuzz fuzz-bins lint soak
fuzz-bins: $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

fuzz:
	@sh scripts/deps.sh
	@command -v clang >/dev/null || { echo "fuzz: needs clang (apt-get install clang)" >&2; exit 1; }
	@$(MAKE) --no-print-directory BUILD=build/fuzz CC=clang OPT=-O1 SAN="$(FUZZ_SAN)" fuzz-bins
	@sh tests/fuzz/run.sh build/fuzz/fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

# Static analysis of src/: cppcheck, then clang-tidy, with the checks below.
# LINT_REPORT_ONLY lists files whose findings are printed but do not fail
# the target (being restructured by their owner; the findings are reported).
CPPCHECK_FLAGS := --enable=warning,style,performance,portability --std=c11 --library=posix \
  --inline-suppr --error-exitcode=1 -q -Iinclude -Isrc -D_GNU_SOURCE -D__GNUC__ \
  '-Dtimercmp(a,b,CMP)=(((a)->tv_sec == (b)->tv_sec) ? ((a)->tv_usec CMP (b)->tv_usec) : ((a)->tv_sec CMP (b)->tv_sec))' \
  --suppress=missingIncludeSystem --suppress=variableScope --suppress=constParameter \
  --suppress=constVariable
# Left out, with the reason: swappable parameters, unused parameters (libevent
# callbacks), unchecked printf-family results (cert-err33-c), memcpy "not
# NUL-terminated" (JSON bytes are not C strings), narrowing and widening of
# constant expressions, Annex K "unsafe buffer" advice, struct padding, and
# valist.Uninitialized (a known false positive when va_start is in the caller),
# and sizeof-expression, which flags sizeof(*p) for p a pointer to pointers,
# the way this code allocates arrays (clang-tidy 14 cannot turn that part off).
TIDY_CHECKS := -*,bugprone-*,cert-*,clang-analyzer-*,concurrency-mt-unsafe,misc-*,performance-*,portability-*,\
  -bugprone-easily-swappable-parameters,-bugprone-sizeof-expression,-bugprone-not-null-terminated-result,\
  -bugprone-narrowing-conversions,-bugprone-implicit-widening-of-multiplication-result,\
  -cert-err33-c,-misc-unused-parameters,-clang-analyzer-valist.Uninitialized,\
  -clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling,\
  -clang-analyzer-optin.performance.Padding
LINT_REPORT_ONLY ?= src/conf/config.c src/daemon/metrics.c src/writer/writer.c
LINT_STRICT := $(filter-out $(LINT_REPORT_ONLY),$(wildcard src/*/*.c))
TIDY_ARGS = -quiet --checks='$(TIDY_CHECKS)'
TIDY_CFLAGS = -std=gnu11 -Iinclude -Isrc -D_GNU_SOURCE $(PKG_CFLAGS)

lint: deps
	@command -v cppcheck >/dev/null && command -v clang-tidy >/dev/null || \
	  { echo "lint: needs cppcheck and clang-tidy (apt-get install cppcheck clang-tidy)" >&2; exit 1; }
	cppcheck $(CPPCHECK_FLAGS) $(LINT_STRICT)
	$(if $(LINT_REPORT_ONLY),-cppcheck $(CPPCHECK_FLAGS) --error-exitcode=0 $(LINT_REPORT_ONLY))
	clang-tidy $(TIDY_ARGS) --warnings-as-errors='*' $(LINT_STRICT) -- $(TIDY_CFLAGS)
	$(if $(LINT_REPORT_ONLY),-clang-tidy $(TIDY_ARGS) $(LINT_REPORT_ONLY) -- $(TIDY_CFLAGS))

# The soak test alone, for 10 minutes (make check runs it for 60 s).
SOAK_SECONDS ?= 600
soak: $(BUILD)/sluiced $(BUILD)/tests/integration/check_faults
	@SLUICED=$(abspath $(BUILD)/sluiced) SLUICE_TOP=$(CURDIR) CK_RUN_CASE=soak \
	  SLUICE_SOAK_SECONDS=$(SOAK_SECONDS) $(BUILD)/tests/integration/check_faults

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) sh bench/run.sh

# The longer benchmark runs (bench/README.md); none is part of `make check`.
# bench-peers installs rsyslog and syslog-ng when run as root.
# The nats sink against a bare libnats publisher (starts its own nats-server).
bench-nats: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) sh bench/nats.sh

.PHONY: bench-peers bench-peers-syslog bench-scaling bench-cost bench-diskq bench-durability bench-tls bench-tap bench-report
bench-peers bench-peers-syslog bench-scaling bench-cost bench-diskq bench-durability bench-tls bench-tap: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BUILD=$(BUILD) sh bench/$(@:bench-%=%).sh

# Regenerates docs/performance.md and docs/img/*.png from bench/results/.
bench-report:
	@sh bench/report.sh

# Installs under $(PREFIX) (default /usr/local), staged under $(DESTDIR).
# The units go to $(UNITDIR) with their /usr/local paths rewritten to
# $(PREFIX).  /etc belongs to the admin: an existing /etc/sluice/sluice.conf
# or /etc/logrotate.d/sluice is never overwritten.  As root without DESTDIR
# it also creates the system user "sluice" the unit runs as.
# See docs/operations.md.
SBINDIR ?= $(PREFIX)/sbin
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/sluice
UNITS   := sluiced.service sluiced.socket sluiced-udp.socket sluiced-local.socket

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man1 \
	  $(DESTDIR)/etc/sluice $(DESTDIR)/etc/logrotate.d
	install -m 0755 $(BUILD)/sluiced $(DESTDIR)$(SBINDIR)/sluiced
	install -m 0755 $(BUILD)/sluice $(DESTDIR)$(BINDIR)/sluice
	install -m 0644 docs/sluice.1 $(DESTDIR)$(MANDIR)/man1/sluice.1
	install -m 0644 README.md conf/sluice.conf docs/*.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/sluiced.8 $(DESTDIR)$(MANDIR)/man8/sluiced.8
	install -m 0644 docs/sluice.conf.5 $(DESTDIR)$(MANDIR)/man5/sluice.conf.5
	for u in $(UNITS); do \
	  sed -e 's|/usr/local/sbin/sluiced|$(SBINDIR)/sluiced|g' \
	      -e 's|/usr/local/share/doc/sluice|$(DOCDIR)|g' systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
	  mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	@if [ -e $(DESTDIR)/etc/sluice/sluice.conf ]; then \
	  echo "install: keeping the existing $(DESTDIR)/etc/sluice/sluice.conf"; \
	else \
	  install -m 0644 conf/sluice.system.conf $(DESTDIR)/etc/sluice/sluice.conf; \
	fi
	@if [ -e $(DESTDIR)/etc/logrotate.d/sluice ]; then \
	  echo "install: keeping the existing $(DESTDIR)/etc/logrotate.d/sluice"; \
	else \
	  install -m 0644 systemd/sluice.logrotate $(DESTDIR)/etc/logrotate.d/sluice; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && ! getent passwd sluice >/dev/null; then \
	  echo "install: creating the system user sluice"; \
	  getent group sluice >/dev/null || groupadd --system sluice; \
	  useradd --system --gid sluice --no-create-home --home-dir /var/lib/sluice \
	    --shell /usr/sbin/nologin --comment "sluice event pipeline" sluice; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# The Debian package (docs/operations.md "Debian package"): debhelper builds
# it from debian/ with this Makefile; the .deb goes to build/.
.PHONY: deb
deb:
	@sh scripts/deps.sh --deb
	dpkg-checkbuilddeps
	debian/rules binary
	@ls build/sluice_*.deb

format:
	clang-format -i src/*/*.c src/*/*.h include/sluice/*.h tests/*.c tests/integration/*.c bench/*.c

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' -type f 2>/dev/null)
