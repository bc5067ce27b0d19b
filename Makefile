# roost — build, run and test.  See README.md.
#
#   make          build every program into build/bin and the unit tests
#   make run      build, set up ./var with a development config, start servers
#   make test     build and run every test (unit, unit under ASan+UBSan,
#                 fuzz smoke run, protocol tests against real daemons)
#
# Layout: each folder D in LIBDIRS becomes build/lib/libD.a from D/*.c
# except D/main.c; a folder with a main.c also becomes a program (PROG_D).
# tests/unit/test_X.c becomes build/tests/test_X linked with every library.
# tests/fuzz/fuzz_X.c becomes build/fuzz/fuzz_X (clang libFuzzer).

CC ?= cc
O ?= build
CFLAGS ?= -O2 -g
LDFLAGS ?=
PYTHON ?= /usr/bin/python3

WARN := -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
	-Wmissing-prototypes -Wpointer-arith -Wvla
ALL_CPPFLAGS := -I. -D_GNU_SOURCE $(CPPFLAGS)
ALL_CFLAGS := -std=c17 $(WARN) -fPIE -MMD -MP $(CFLAGS)
LDLIBS := -lsqlite3 -levent_openssl -levent -lssl -lcrypto -lsasl2 \
	-luuid -lcrypt -lpthread

# Link order: a folder may use only folders to its right.
LIBDIRS := admin lda pop3d mda storage auth common
PROG_admin := roostctl
PROG_lda := roost-lmtpd
PROG_mda := roost-deliver
PROG_pop3d := roost-pop3d

LIBS := $(foreach d,$(LIBDIRS),$(O)/lib/lib$(d).a)
PROGS := $(foreach d,$(LIBDIRS),$(if $(and $(PROG_$(d)),$(wildcard $(d)/main.c)),$(O)/bin/$(PROG_$(d))))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test check-unit check-asan check-protocol \
	check-protocol-asan fuzz-smoke fuzz run clean bench
.DEFAULT_GOAL := all

all: $(O)/.deps-ok $(LIBS) $(PROGS) $(UNIT_BIN)

$(O)/.deps-ok: scripts/deps.sh
	@bash scripts/deps.sh build
	@mkdir -p $(O) && touch $@

deps:
	@bash scripts/deps.sh all

define libdir
$(1)_SRC := $$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c))
$(1)_OBJ := $$(patsubst %.c,$(O)/obj/%.o,$$($(1)_SRC))
$(O)/lib/lib$(1).a: $$($(1)_OBJ)
	@mkdir -p $$(dir $$@)
	rm -f $$@
	$$(if $$^,ar rcs $$@ $$^,ar rcs $$@)
endef
$(foreach d,$(LIBDIRS),$(eval $(call libdir,$(d))))

define progdir
$(O)/bin/$(PROG_$(1)): $(O)/obj/$(1)/main.o $(LIBS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) $$(LDFLAGS) -o $$@ $$< $(LIBS) $$(LDLIBS)
endef
$(foreach d,$(LIBDIRS),$(if $(PROG_$(d)),$(eval $(call progdir,$(d)))))

$(O)/obj/%.o: %.c $(O)/.deps-ok
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(O)/tests/%: $(O)/obj/tests/unit/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(LIBS) -lcmocka $(LDLIBS)

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
# Keep test objects: they are not worth rebuilding every run.
.SECONDARY:

# ---- tests ----

check-unit: all
	@bash scripts/run-unit.sh $(O)/tests

ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer \
	-fsanitize=address,undefined -fno-sanitize-recover=all
check-asan:
	@$(MAKE) --no-print-directory O=build/asan CC=clang \
		CFLAGS="$(ASAN_FLAGS)" LDFLAGS="$(ASAN_FLAGS)" all
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1 \
		bash scripts/run-unit.sh build/asan/tests

FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined
fuzz:
	@$(MAKE) --no-print-directory O=build/fuzz CC=clang \
		CFLAGS="$(FUZZ_FLAGS)" LDFLAGS="-fsanitize=address,undefined" \
		$(patsubst tests/fuzz/%.c,build/fuzz/fuzzers/%,$(FUZZ_SRC))

$(O)/fuzzers/%: $(O)/obj/tests/fuzz/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $< \
		$(LIBS) $(LDLIBS)

# A short run of every fuzzer over its seed corpus (tests/fuzz/corpus/X).
fuzz-smoke: fuzz
	@bash scripts/fuzz-smoke.sh build/fuzz/fuzzers tests/fuzz/corpus

check-protocol: all
	@bash scripts/deps.sh test
	cd tests/protocol && ROOST_BIN=$(CURDIR)/$(O)/bin \
		$(PYTHON) -m pytest -q -x -p no:cacheprovider .

# The same tests against the ASan+UBSan daemons (built by check-asan),
# less the ones that only add outside clients (Postfix, fetchmail,
# getmail, curl) on top of code paths the others already cover.  A
# sanitizer report aborts the daemon, which fails its test.
check-protocol-asan:
	@$(MAKE) --no-print-directory O=build/asan CC=clang \
		CFLAGS="$(ASAN_FLAGS)" LDFLAGS="$(ASAN_FLAGS)" all
	cd tests/protocol && ROOST_BIN=$(CURDIR)/build/asan/bin \
		ROOST_SANITIZED=1 \
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1 \
		$(PYTHON) -m pytest -q -x -p no:cacheprovider \
		--ignore=test_postfix.py --ignore=test_pop3_clients.py .

test: all
	@bash scripts/deps.sh test
	@$(MAKE) --no-print-directory check-unit
	@$(MAKE) --no-print-directory check-asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory check-protocol
	@$(MAKE) --no-print-directory check-protocol-asan

run: all
	@bash scripts/run-dev.sh $(O)/bin

bench: all
	@bash scripts/deps.sh bench
	$(PYTHON) bench/lmtp --bin $(O)/bin
	$(PYTHON) bench/pop3 --bin $(O)/bin

clean:
	rm -rf build
