# repo_stream - PGXS build.  `make test` and `make demo` are the two entry
# points the README documents; both work as root on a fresh Debian 12.

EXTENSION = repo_stream repo_stream_router
# The version `make install` builds.  Older versions' install scripts are
# frozen in upgrade/, with one upgrade script per step (docs/operations.md);
# tools/check_upgrade.sh fails when the sources change without the step.
EXTVERSION = 0.2.0
MODULE_big = repo_stream

SRCS = $(sort $(wildcard src/*.c))
OBJS = $(SRCS:.c=.o)
# Backend glue lives in *_sql.c, repo_stream.c and decoder.c (the output
# plugin); everything else is pure C
# that unit tests and fuzzers link without the server.
PURE_SRCS = $(filter-out %_sql.c src/repo_stream.c src/decoder.c,$(SRCS))

# the router database's extension (PL/Proxy functions; docs/scale-out.md)
DATA_built = repo_stream--$(EXTVERSION).sql repo_stream_router--$(EXTVERSION).sql
DATA = $(wildcard upgrade/*.sql)
SHLIB_LINK = -lcbor -lsodium
# the relay's own connections to its shards (src/relay_conn_sql.c), as dblink
# and postgres_fdw make theirs
SHLIB_LINK_INTERNAL = $(libpq)
PG_CPPFLAGS = -I$(libpq_srcdir)
PG_CFLAGS = -Wall -Wmissing-prototypes

# setup first: it makes the cluster's master key file if there is none
REGRESS = setup $(filter-out setup,$(sort $(basename $(notdir $(wildcard sql/*.sql)))))
REGRESS_OPTS = --load-extension=repo_stream
EXTRA_CLEAN = test/unit/build results regression.diffs regression.out bench/mst_bench test/fuzz/build \
	tools/repo_stream_car

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Headers are few and shared: any change rebuilds every object.
$(OBJS): $(wildcard src/*.h)

repo_stream--$(EXTVERSION).sql: $(sort $(wildcard src/sql/*.sql))
	cat $^ > $@

repo_stream_router--$(EXTVERSION).sql: router/repo_stream_router.sql
	cp $< $@

check-upgrade:
	bash tools/check_upgrade.sh

# one-line faults, one at a time; lists the ones no test catches (not part
# of `make test`; tools/mutation/faults.txt)
mutation:
	python3 tools/mutation/run.py

# ---- repo_stream_car: the command-line client (C + libpq), installed next
# to the PostgreSQL binaries (pg_config --bindir) by `make install` ----
CLI = tools/repo_stream_car
CLI_CFLAGS = -std=gnu11 -O2 -g -Wall -Wmissing-prototypes -iquote src -iquote tools \
	-I$(shell $(PG_CONFIG) --includedir)
CLI_LIBS = -L$(shell $(PG_CONFIG) --libdir) -lpq
# the manifest parser and the checks of untrusted values: pure C, shared
# with the unit test and the fuzzer of the manifest (no libpq)
CLI_PURE = tools/car_manifest.c src/syntax.c

$(CLI): tools/repo_stream_car.c $(CLI_PURE) tools/car_manifest.h src/syntax.h
	$(CC) $(CLI_CFLAGS) -o $@ $< $(CLI_PURE) $(CLI_LIBS)

all: $(CLI)
install: install-cli
uninstall: uninstall-cli
.PHONY: install-cli uninstall-cli
install-cli: $(CLI)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(CLI) '$(DESTDIR)$(bindir)/repo_stream_car'
uninstall-cli:
	rm -f '$(DESTDIR)$(bindir)/repo_stream_car'

# ---- C unit tests of the pure modules (TAP, under ASan/UBSan) ----
UNIT_TESTS = $(patsubst test/unit/%.c,test/unit/build/%,$(wildcard test/unit/test_*.c))
UNIT_CFLAGS = -std=gnu11 -O1 -g -Wall -fsanitize=address,undefined -fno-omit-frame-pointer
UNIT_LIBS = -lcbor -lsodium -ljansson

test/unit/build/%: test/unit/%.c $(PURE_SRCS) $(wildcard src/*.h) test/unit/tap.h
	@mkdir -p test/unit/build
	$(CC) $(UNIT_CFLAGS) -iquote src -o $@ $< $(PURE_SRCS) $(UNIT_LIBS)

# the CLI's manifest parser lives in tools/
test/unit/build/test_car_manifest: test/unit/test_car_manifest.c tools/car_manifest.c tools/car_manifest.h \
		$(PURE_SRCS) $(wildcard src/*.h) test/unit/tap.h
	@mkdir -p test/unit/build
	$(CC) $(UNIT_CFLAGS) -iquote src -iquote tools -o $@ $< tools/car_manifest.c $(PURE_SRCS) $(UNIT_LIBS)

unit: $(UNIT_TESTS)

# ---- benchmarks of the pure modules: optimized, no sanitizers ----
BENCH_CFLAGS = -std=gnu11 -O2 -g -Wall

bench/mst_bench: bench/mst_bench.c $(PURE_SRCS) $(wildcard src/*.h)
	$(CC) $(BENCH_CFLAGS) -iquote src -o $@ $< $(PURE_SRCS) $(UNIT_LIBS)

# ---- libFuzzer harnesses of the pure decoders (clang; see test/fuzz/) ----
# `make fuzz` runs each harness for FUZZ_SECONDS; the seeds come from the
# fixtures (test/fuzz/seeds.c), plus the inputs in test/fuzz/regressions/.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_TARGETS = $(sort $(patsubst test/fuzz/fuzz_%.c,%,$(wildcard test/fuzz/fuzz_*.c)))
FUZZ_OBJS = $(patsubst src/%.c,test/fuzz/build/obj/%.o,$(PURE_SRCS))
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined

test/fuzz/build/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

test/fuzz/build/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -iquote src -o $@ $< $(FUZZ_OBJS) $(UNIT_LIBS)

# the CLI's manifest parser (tools/car_manifest.c) with the pure sources
test/fuzz/build/obj/car_manifest.o: tools/car_manifest.c tools/car_manifest.h $(wildcard src/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -iquote src -c -o $@ $<

test/fuzz/build/fuzz_car_manifest: test/fuzz/fuzz_car_manifest.c test/fuzz/fuzz.h \
		test/fuzz/build/obj/car_manifest.o $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -iquote src -iquote tools -o $@ $< \
		test/fuzz/build/obj/car_manifest.o $(FUZZ_OBJS) $(UNIT_LIBS)

test/fuzz/build/seeds.stamp: test/fuzz/seeds.c $(PURE_SRCS) $(wildcard src/*.h) \
		test/fixtures/frames/frames.json $(wildcard test/fixtures/atproto-interop/data-model/*.json)
	@mkdir -p test/fuzz/build
	$(CC) -std=gnu11 -O1 -iquote src -o test/fuzz/build/seeds-gen $< $(PURE_SRCS) $(UNIT_LIBS)
	rm -rf test/fuzz/build/seeds && test/fuzz/build/seeds-gen test/fuzz/build/seeds
	touch $@

fuzz-build: $(FUZZ_TARGETS:%=test/fuzz/build/fuzz_%) test/fuzz/build/seeds.stamp

fuzz:
	bash test/install-deps.sh
	$(MAKE) fuzz-build
	bash test/fuzz/run.sh $(FUZZ_SECONDS) test/logs/fuzz $(FUZZ_TARGETS)

# ---- pg_regress against a server under valgrind memcheck (as root) ----
valgrind:
	bash test/valgrind/run.sh

.PHONY: check-upgrade mutation test demo demo-cluster deps unit bench bench-profile fuzz fuzz-build valgrind
deps:
	bash test/install-deps.sh

test:
	bash test/run.sh

demo:
	bash demo/demo.sh

# two shards, a router and a relay on this machine (docs/scale-out.md)
demo-cluster:
	bash demo/cluster.sh

bench:
	bash bench/run.sh

# where the CPU time of one put_record commit goes (as root; perf)
bench-profile:
	bash bench/profile.sh
