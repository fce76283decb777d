# deploy/dev/moesif.mk: moesif-dev, the local server of Moesif's collector
# API (deploy/dev/MOESIF-DEV.md), its test and its load benchmark.
#
# moesif-dev links core/alloc.c and core/log.c only, never the pipeline's
# transform or schema, so it stays an independent oracle in tests.  It
# links GnuTLS itself (--tls-client-ca makes a client certificate
# required, libmicrohttpd's GnuTLS session); libgnutls28-dev comes with
# libmicrohttpd-dev, which depends on it.

MOESIF_DEV_SRC := deploy/dev/moesif-dev.c deploy/dev/moesif_http.c \
	deploy/dev/moesif_parse.c deploy/dev/moesif_store.c \
	deploy/dev/moesif_faults.c deploy/dev/moesif_delay.c \
	deploy/dev/moesif_pool.c core/alloc.c core/log.c
MOESIF_LOAD_SRC := tests/bench/moesif-load.c core/alloc.c

$(BUILD)/moesif-dev: $(call obj,$(MOESIF_DEV_SRC))
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pkg_libs,libmicrohttpd gnutls yajl libdeflate zlib) -lpthread

$(BUILD)/moesif-load: $(call obj,$(MOESIF_LOAD_SRC))
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(call pkg_libs,libcurl libdeflate) -lpthread

DEV_BINS += $(BUILD)/moesif-dev
BENCH_BINS += $(BUILD)/moesif-load
SCRIPT_TESTS += tests/dev/test_moesif_dev.sh
BENCHES += tests/bench/bench_moesif.sh
