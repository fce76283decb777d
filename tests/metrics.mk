# tests/metrics.mk: the unit tests (cmocka) of the metrics endpoint,
# cmd/metrics.c (the /metrics, /healthz and /readyz server, libmicrohttpd)
# and cmd/metrics_format.c (the Prometheus text of a snapshot), built to
# $(BUILD)/tests/<name> and appended to UNIT_TESTS.  Both sources are in
# CMD_LIB_SRC, so in libuserpipe.a.
#
# test_metrics is a socket test: it serves on 127.0.0.1 with a port the
# kernel picks and fetches with libcurl; it also starts a thread, hence
# -pthread.  test_metrics_format needs neither: it formats into a buffer.
# Both link tests/cmd/metrics_snapshots.c, the snapshots they share.

METRICS_TESTS := tests/cmd/test_metrics.c tests/cmd/test_metrics_format.c
METRICS_TEST_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(METRICS_TESTS)))
METRICS_TEST_FIXTURES := tests/cmd/metrics_snapshots.c

define metrics_test_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(call obj,$(1) $(METRICS_TEST_FIXTURES)) \
		$(BUILD)/libuserpipe.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -pthread -o $$@ $$^ $$(TEST_LIBS) -lm
endef
$(foreach t,$(METRICS_TESTS),$(eval $(call metrics_test_rule,$(t))))

UNIT_TESTS += $(METRICS_TEST_BINS)

.PHONY: metrics-tests
metrics-tests: $(METRICS_TEST_BINS)
