# tests/metrics.mk: core/metrics.c (the /metrics, /healthz and /readyz
# endpoint, libmicrohttpd), added to libuserpipe.a, and its unit test
# (cmocka), built to $(BUILD)/tests/test_metrics and appended to
# UNIT_TESTS.
#
# CORE_SRC is a simple variable defined before the fragments are included,
# so the append below lands in LIB_SRC; it adds core/metrics.c only when
# the root Makefile does not list it already.  test_metrics is a socket test:
# it serves on 127.0.0.1 with a port the kernel picks and fetches with
# libcurl; it also starts a thread, hence -pthread.

METRICS_TESTS := tests/cmd/test_metrics.c
METRICS_TEST_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(METRICS_TESTS)))

define metrics_test_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(call obj,$(1)) $(BUILD)/libuserpipe.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -pthread -o $$@ $$^ $$(TEST_LIBS) -lm
endef
$(foreach t,$(METRICS_TESTS),$(eval $(call metrics_test_rule,$(t))))

UNIT_TESTS += $(METRICS_TEST_BINS)

.PHONY: metrics-tests
metrics-tests: $(METRICS_TEST_BINS)
