# rill - plain Makefile. Overridable: CC CXX CFLAGS LDFLAGS PREFIX DESTDIR.
#
#   make            build lib/librill.a and lib/librill.so
#   make demo       install missing dependencies, build and run the demo
#   make check      install missing dependencies, build and run every test
#   make bench      build and run the benchmarks
#   make asan       the test suite under AddressSanitizer + UBSan
#   make tsan       the runtime tests under ThreadSanitizer
#   make install / uninstall   honour PREFIX and DESTDIR

CC      ?= cc
CXX     ?= c++
PREFIX  ?= /usr/local
DESTDIR ?=
CFLAGS  ?= -O2 -g
LDFLAGS ?=
WERROR  ?=

VERSION      := 0.1.0
SOVERSION    := 0
BUILD        ?= build
LIBDIR_OUT   ?= lib

WARN     := -std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wformat=2 -Wvla $(WERROR)
ALL_CPPFLAGS := -D_GNU_SOURCE -Iinclude -Isrc $(CPPFLAGS)
ALL_CFLAGS   := $(WARN) $(CFLAGS) -pthread
LIB_CFLAGS   := $(ALL_CFLAGS) -fPIC -fvisibility=hidden -fno-semantic-interposition
LIBS         := -llmdb -lpthread

SRC      := $(sort $(wildcard src/*/*.c))
OBJ      := $(SRC:%.c=$(BUILD)/%.o)
DEP      := $(OBJ:.o=.d)

STATIC   := $(LIBDIR_OUT)/librill.a
SHARED   := $(LIBDIR_OUT)/librill.so.$(VERSION)
SONAME   := librill.so.$(SOVERSION)

TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/*_test.c)))
EXAMPLES := $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(sort $(wildcard bench/*.c)))
TOOLS    := $(BUILD)/tools/rill-snapshot

.PHONY: all deps demo check test-run examples-run docs-check header-check \
        symbols-check install-check install uninstall clean bench asan tsan

all: $(STATIC) $(LIBDIR_OUT)/librill.so $(LIBDIR_OUT)/rill.pc $(TOOLS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(SHARED): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDFLAGS) $(LIBS)

$(LIBDIR_OUT)/$(SONAME): $(SHARED)
	ln -sf librill.so.$(VERSION) $@

$(LIBDIR_OUT)/librill.so: $(LIBDIR_OUT)/$(SONAME)
	ln -sf $(SONAME) $@

$(LIBDIR_OUT)/rill.pc: pkgconfig/rill.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

# Tests link the static library so they may also reach rill__ internals.
# CRITERION_SHIM=1 (the TSan build) uses tests/shim instead of Criterion,
# whose sandbox cannot start under ThreadSanitizer.
ifdef CRITERION_SHIM
TEST_CPPFLAGS := -isystem tests/shim
TEST_LINK     := $(BUILD)/tests/shim.o
TEST_DEPS     := $(BUILD)/tests/shim.o
else
TEST_CPPFLAGS :=
TEST_LINK     := -lcriterion
TEST_DEPS     :=
endif

$(BUILD)/tests/shim.o: tests/shim/shim.c tests/shim/criterion/criterion.h
	@mkdir -p $(dir $@)
	$(CC) -Itests/shim $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(STATIC) $(TEST_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CPPFLAGS) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -Wno-missing-prototypes -o $@ $< $(TEST_LINK) $(STATIC) $(LDFLAGS) $(LIBS)

# These tests run the snapshot tool.
$(BUILD)/tests/snapshot_tool_test $(BUILD)/tests/checkpoint_dir_test: $(TOOLS)

# The snapshot tool links the static library: it uses rill__ internals.
$(BUILD)/tools/rill-snapshot: $(wildcard tools/rill-snapshot*.[ch]) $(STATIC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -o $@ $(filter %.c,$^) $(STATIC) $(LDFLAGS) $(LIBS)

# Examples and benchmarks link the shared library, as a host program would.
$(BUILD)/examples/%: examples/%.c $(LIBDIR_OUT)/librill.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -o $@ $< -L$(LIBDIR_OUT) -Wl,-rpath,$(abspath $(LIBDIR_OUT)) -lrill $(LDFLAGS) $(LIBS)

$(BUILD)/bench/%: bench/%.c $(wildcard bench/*.h) $(LIBDIR_OUT)/librill.so
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -o $@ $< -L$(LIBDIR_OUT) -Wl,-rpath,$(abspath $(LIBDIR_OUT)) -lrill $(LDFLAGS) $(LIBS)

deps:
	@sh scripts/deps.sh

demo: deps all $(BUILD)/examples/demo
	$(BUILD)/examples/demo

test-run: $(TESTS)
	@sh scripts/run-tests.sh $(TESTS)

examples-run: $(EXAMPLES)
	@sh scripts/run-examples.sh $(BUILD)/examples

header-check:
	@sh scripts/check-header.sh "$(CC)" "$(CXX)"

symbols-check: all
	@sh scripts/check-symbols.sh $(LIBDIR_OUT)/librill.so

docs-check: all
	@sh scripts/check-man.sh "$(CC)" $(LIBDIR_OUT)

install-check: all
	@MAKE="$(MAKE)" CC="$(CC)" sh scripts/check-install.sh

check: deps all header-check symbols-check docs-check examples-run test-run install-check
	@echo "make check: all checks passed"

bench: all $(BENCHES)
	@for b in $(BENCHES); do $$b || exit 1; done

# Sanitizer builds live in their own folders.
asan:
	$(MAKE) BUILD=build/asan LIBDIR_OUT=build/asan/lib \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" test-run

tsan:
	$(MAKE) BUILD=build/tsan LIBDIR_OUT=build/tsan/lib CRITERION_SHIM=1 \
	  CFLAGS="-O1 -g -fsanitize=thread" LDFLAGS="-fsanitize=thread" \
	  TESTS="$(patsubst $(BUILD)/%,build/tsan/%,$(filter %/runtime_test %/emit_test %/partition_test %/job_test %/backpressure_test %/eventtime_test %/process_test %/rolling_test %/checkpoint_test %/checkpoint_final_test %/checkpoint_tolerance_test %/exactly_once_test %/checkpoint_dir_test %/state_dir_test %/state_snapshot_test %/stop_test %/latency_test %/state_longkey_test,$(TESTS)))" test-run

# After (un)installing into the live system (no DESTDIR, where a package
# manager's trigger would do it), update the man database of the pages'
# hierarchy so that apropos and whatis find them; without mandb, or when it
# fails (no permission), say so and go on.
MAN_DB_REFRESH = if [ -z "$(DESTDIR)" ] && command -v mandb >/dev/null 2>&1; then \
	  echo "mandb -q $(PREFIX)/share/man"; \
	  mandb -q "$(PREFIX)/share/man" || \
	    echo "rill: mandb failed: apropos may not find the rill pages until it runs"; \
	fi

install: all
	install -d $(DESTDIR)$(PREFIX)/include/rill $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	  $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 644 include/rill.h $(DESTDIR)$(PREFIX)/include/rill.h
	install -m 644 include/rill/*.h $(DESTDIR)$(PREFIX)/include/rill/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/librill.a
	install -m 755 $(SHARED) $(DESTDIR)$(PREFIX)/lib/librill.so.$(VERSION)
	ln -sf librill.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/librill.so
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' pkgconfig/rill.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/rill.pc
	chmod 644 $(DESTDIR)$(PREFIX)/lib/pkgconfig/rill.pc
	install -m 755 $(TOOLS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 man/man1/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/man3/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -m 644 man/man5/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/man7/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/
	@$(MAN_DB_REFRESH)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/rill.h \
	  $(DESTDIR)$(PREFIX)/lib/librill.a \
	  $(DESTDIR)$(PREFIX)/lib/librill.so.$(VERSION) \
	  $(DESTDIR)$(PREFIX)/lib/$(SONAME) $(DESTDIR)$(PREFIX)/lib/librill.so \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig/rill.pc $(DESTDIR)$(PREFIX)/bin/rill-snapshot
	for f in include/rill/*.h; do rm -f $(DESTDIR)$(PREFIX)/include/rill/$${f##*/}; done
	if [ -d $(DESTDIR)$(PREFIX)/include/rill ]; then \
	  rmdir $(DESTDIR)$(PREFIX)/include/rill 2>/dev/null || \
	    echo "rill: $(DESTDIR)$(PREFIX)/include/rill holds other files: left in place"; \
	fi
	for f in man/man1/*.1; do rm -f $(DESTDIR)$(PREFIX)/share/man/man1/$${f##*/}; done
	for f in man/man3/*.3; do rm -f $(DESTDIR)$(PREFIX)/share/man/man3/$${f##*/}; done
	for f in man/man5/*.5; do rm -f $(DESTDIR)$(PREFIX)/share/man/man5/$${f##*/}; done
	for f in man/man7/*.7; do rm -f $(DESTDIR)$(PREFIX)/share/man/man7/$${f##*/}; done
	@$(MAN_DB_REFRESH)

clean:
	rm -rf build lib

-include $(DEP)
