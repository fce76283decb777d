# userpipe: one non-recursive Makefile.  Folders add their own targets in
# */*.mk fragments, included below; they append to the lists declared here.
#
#   make            build build/userpipe (and the dev stack)
#   make test       install missing Debian packages, build, run every test
#   make demo       run the main job on the embedded dev stack
#                   (DEV_KAFKA=apache: on a real Apache Kafka instead)
#   make test-cluster  the three-node Apache Kafka tests (tests/kafka/)
#   make bench      benchmarks (ratios against baselines measured in the same run)
#   make asan|ubsan the whole test suite under a sanitizer (asan is ASan and
#                   UBSan in one build; .ci/run runs it, not ubsan)
#   make fuzz       libFuzzer over the transform and the per-event path,
#                   FUZZ_SECONDS each
#   make image-test build the container image and run it on the dev stack
#   make format | format-check | clean

VARIANT ?= release
BUILD := build/$(VARIANT)
OPT ?= -O2 -g
CC ?= cc

# librdkafka is built from source (deps/librdkafka.mk), not a pkg-config
# package of the system
PKGS := libcurl yajl cmocka libmicrohttpd libdeflate zlib
# Debian packages the build, tests, demo and benchmarks need.
# (dpkg-dev and the libssl, libsasl2, libzstd, liblz4 headers: librdkafka's
# build, deps/librdkafka.mk)
DEB_PKGS := build-essential pkg-config dpkg-dev libssl-dev libsasl2-dev \
	libzstd-dev liblz4-dev libyajl-dev \
	libcurl4-openssl-dev libcmocka-dev libmicrohttpd-dev libdeflate-dev \
	zlib1g-dev kcat python3 python3-kafka python3-jsonschema python3-yaml \
	curl procps time bsdutils systemd strace openssl tinyproxy
FUZZ_DEB_PKGS := clang libclang-rt-14-dev

WARN := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
	-Werror -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wvla -Wwrite-strings -Wformat=2 -fno-common

SAN_asan := -fsanitize=address,undefined -fno-sanitize-recover=all
SAN_ubsan := -fsanitize=undefined -fno-sanitize-recover=all
SAN := $(SAN_$(VARIANT))
ifneq ($(SAN),)
OPT := -g -O1 -fno-omit-frame-pointer
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# Each binary links the libraries it uses, no more (issue 14):
# $(call pkg_libs,PKG...) is their link flags.
pkg_libs = $(shell pkg-config --libs $(1) 2>/dev/null)
USERPIPE_LIBS = $(call pkg_libs,libcurl yajl libmicrohttpd libdeflate) $(RDKAFKA_LIBS)
# unit tests: libuserpipe.a's libraries, cmocka, and zlib to check gzip
# bodies with a second implementation
TEST_LIBS = $(USERPIPE_LIBS) $(call pkg_libs,cmocka zlib)
ALL_CFLAGS = $(WARN) $(OPT) $(SAN) $(RDKAFKA_CFLAGS) $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
ALL_LDFLAGS = $(SAN) -pthread $(LDFLAGS)

# Library sources of each folder; main.c and the commands are linked only
# into the binary so unit tests can link the rest.
CORE_SRC := core/alloc.c core/clock.c core/codes.c core/hash.c core/log.c core/kafka.c
SCHEMAS_SRC := schemas/schema.c schemas/schema_file.c schemas/claims.c
TRANSFORM_SRC := transform/transform.c transform/fields.c
INGEST_SRC := ingest/ingest.c ingest/watermark.c ingest/end_offsets.c
SINK_SRC := sink/dlq.c
CMD_LIB_SRC := cmd/config.c cmd/parked.c cmd/metrics.c cmd/metrics_format.c cmd/ndjson.c cmd/dlq_read.c
LIB_SRC = $(CORE_SRC) $(SCHEMAS_SRC) $(TRANSFORM_SRC) $(INGEST_SRC) $(SINK_SRC) $(CMD_LIB_SRC)
MAIN_SRC = cmd/main.c cmd/transform.c cmd/run.c cmd/run_report.c cmd/schema.c cmd/dlq.c

UNIT_TESTS :=     # cmocka executables, run by `make check`
SCRIPT_TESTS :=   # shell tests, run by `make check` after the unit tests
BENCHES :=        # scripts run by `make bench`
DEV_BINS :=       # dev-stack binaries built by `make`

.PHONY: all test check deps fuzz-deps demo bench asan ubsan fuzz format docs \
	format-check clean dev-up dev-down

all: build/userpipe

# $(call obj,a.c b.c): their object files in this variant's folder.
obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

# every fragment by name (issue 14: the wildcard named folders that hold
# none, and would silently skip a fragment gone missing)
include deps/librdkafka.mk tests/deploy.mk tests/deploy/image.mk \
	tests/metrics.mk tests/tests.mk \
	tests/bench/bench.mk tests/bench/pipeline.mk tests/e2e/e2e.mk \
	tests/kafka/kafka.mk deploy/dev/kafka.mk deploy/dev/moesif.mk \
	deploy/dev/kafka/kafka.mk sink/sink.mk ingest/ingest.mk \
	tests/distro/distro.mk

# every object may include <librdkafka/rdkafka.h>: the library (and its
# headers) come first
$(BUILD)/obj/%.o: %.c | $(RDKAFKA_A)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libuserpipe.a: $(call obj,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/userpipe: $(call obj,$(MAIN_SRC)) $(BUILD)/libuserpipe.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(USERPIPE_LIBS) -lm

build/userpipe: $(BUILD)/userpipe $(DEV_BINS)
	@if [ "$(VARIANT)" = release ]; then cp $(BUILD)/userpipe $@.tmp && mv $@.tmp $@; fi

# `make test`: install what is missing, then build and test in a fresh
# make so pkg-config sees the packages just installed.
test: deps
	$(MAKE) --no-print-directory check

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

fuzz-deps:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) $(FUZZ_DEB_PKGS)"

check: all $(UNIT_TESTS)
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh $(UNIT_TESTS) -- $(SCRIPT_TESTS)

asan:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory VARIANT=asan check

ubsan:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory VARIANT=ubsan check

bench: deps
	$(MAKE) --no-print-directory all $(BENCH_BINS)
	@set -e; for b in $(BENCHES); do BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) $$b; done

# `make demo DEV_KAFKA=apache`: the same on the Apache Kafka of the tests
demo: deps
	$(MAKE) --no-print-directory all $(if $(filter apache,$(DEV_KAFKA)),kafka-jars)
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) deploy/demo.sh

FORMAT_SRC = $(shell git ls-files '*.c' '*.h')
format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build

-include $(shell find build -name '*.d' -type f 2>/dev/null)

# libFuzzer: build with clang, run each target FUZZ_SECONDS; a crashing
# input is written to build/fuzz/ (<target>-crash-*, -leak-*, -timeout-*).
#   fuzz_transform    the transform alone, a schema kept across inputs
#   fuzz_event_path   the per-event path of `userpipe run` (issue 20): the
#                     transform with new keys deferred, claims read back
#                     into an in-process schema (races, schema.max_keys),
#                     and the batcher's request bodies
# fuzz-deps installs clang and libclang-rt-14-dev (libFuzzer and the
# sanitizer runtimes of Debian 12's clang 14).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := fuzz_transform fuzz_event_path
# only what the per-event path needs: no Kafka, no HTTP in the fuzzers
FUZZ_COMMON_SRC = core/alloc.c core/codes.c core/hash.c core/log.c \
	schemas/schema.c schemas/schema_file.c $(TRANSFORM_SRC)
FUZZ_EXTRA_fuzz_transform :=
FUZZ_EXTRA_fuzz_event_path := sink/batch.c sink/merge.c
fuzz: fuzz-deps
	@mkdir -p build/fuzz
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p build/fuzz/corpus-$$t; \
		case $$t in fuzz_event_path) extra="$(FUZZ_EXTRA_fuzz_event_path)" ;; *) extra= ;; esac; \
		echo "clang ... -o build/fuzz/$$t"; \
		clang $(filter-out -Werror,$(WARN)) -g -O1 -fsanitize=fuzzer,address,undefined \
			-fno-sanitize-recover=all $(shell pkg-config --cflags yajl) \
			-o build/fuzz/$$t $(FUZZ_COMMON_SRC) $$extra tests/fuzz/$$t.c \
			$(shell pkg-config --libs yajl); \
		cp -n tests/fuzz/corpus/* build/fuzz/corpus-$$t/ 2>/dev/null || true; \
		echo "== $$t: $(FUZZ_SECONDS) s"; \
		build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4200 \
			-timeout=5 -rss_limit_mb=1024 -print_final_stats=1 \
			-artifact_prefix=build/fuzz/$$t- build/fuzz/corpus-$$t; \
	done

# README.md's configuration reference, generated from cmd/config.c's table.
docs: all
	@build/userpipe config-reference >build/config-reference.md
	@awk 'BEGIN { skip = 0 } \
		/<!-- config-reference:begin -->/ { print; while ((getline line < "build/config-reference.md") > 0) print line; skip = 1; next } \
		/<!-- config-reference:end -->/ { skip = 0 } \
		!skip { print }' README.md >README.md.tmp && mv README.md.tmp README.md
	@echo "README.md: configuration reference regenerated"
