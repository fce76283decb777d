# deps/librdkafka.mk: librdkafka, built from source and linked statically
# into every binary of ours that talks Kafka (userpipe, kafka-dev, the unit
# tests, the benchmarks), as Vector (rdkafka-sys) and Fluent Bit (lib/)
# vendor theirs (issue 19).
#
# Why not Debian 12's librdkafka 2.0.2: it cannot log in to Kafka 4 with
# SCRAM (its client-final message fails the strict nonce check Kafka 4
# restored; fixed in librdkafka 2.6.1, its pull request 4895), it lacks
# fetch.queue.backoff.ms (2.2.0; userpipe carried a thread to work around
# that), the KIP-848 consumer protocol and OIDC fixes.
#
# Where the source comes from: Debian 13 (trixie)'s source package of
# librdkafka 2.8.0, fetched with `apt-get source`, so it is checked against
# trixie's signed Release file; trixie is a stable release, so 2.8.0 stays
# fetchable for its whole life (a newer upstream from unstable would vanish
# at its next upload).  Configured against the system's OpenSSL, Cyrus SASL,
# zstd, lz4, zlib and libcurl, every feature required.
#
# Cache: build/librdkafka/ (one build for every variant: release, asan,
# ubsan link the same library), rebuilt only when this fragment or the
# script changes, or by `make clean`.  A fresh build takes about 30 s of a
# 2-core machine plus the download (deps/librdkafka.sh prints its times).

RDKAFKA_VERSION := 2.8.0
RDKAFKA_SUITE := trixie
RDKAFKA_DIR := build/librdkafka
RDKAFKA_A := $(RDKAFKA_DIR)/lib/librdkafka.a
# the system libraries librdkafka.a needs at link time, by pkg-config name
RDKAFKA_DEP_PKGS := libssl libcrypto libsasl2 libzstd liblz4 libcurl zlib
# -isystem: its header is not ours to warn about (-Wextra finds a
# qualified return type in 2.8.0's rdkafka.h)
RDKAFKA_CFLAGS := -isystem $(RDKAFKA_DIR)/include
RDKAFKA_LIBS = $(RDKAFKA_A) $(call pkg_libs,$(RDKAFKA_DEP_PKGS)) -ldl -lrt -lm

$(RDKAFKA_A): deps/librdkafka.mk deps/librdkafka.sh
	deps/librdkafka.sh $(RDKAFKA_VERSION) $(RDKAFKA_SUITE) $(abspath $(RDKAFKA_DIR))
	@touch $@

.PHONY: librdkafka
librdkafka: $(RDKAFKA_A)
