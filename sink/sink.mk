# sink/sink.mk: the sink's sources, added to libuserpipe.a, and its unit
# tests (cmocka, one executable per tested file, built to
# $(BUILD)/tests/<name>), appended to UNIT_TESTS.
#
# test_sink_http is the one test with a socket: libmicrohttpd on
# 127.0.0.1, port chosen by the kernel.  Every other test drives the sink
# through the transport seam of sink/sink_int.h.

SINK_SRC += sink/sink.c sink/batch.c sink/merge.c sink/gzip.c sink/policy.c sink/http.c

# dlq.c's SHA-256 of a value cut to fit the dead-letter topic (issue 20):
# OpenSSL's libcrypto, which librdkafka links already
USERPIPE_LIBS += $(call pkg_libs,libcrypto)

SINK_TESTS := \
	tests/sink/test_policy.c \
	tests/sink/test_batch.c \
	tests/sink/test_gzip.c \
	tests/sink/test_sink.c \
	tests/sink/test_sink_random.c \
	tests/sink/test_sink_http.c \
	tests/sink/test_dlq.c

SINK_TEST_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(SINK_TESTS)))

# test_merge checks the merge against moesif-dev's own store, linked in:
# the code that applies updates as Moesif does in every end-to-end test
# (the store's clock, mnow_ms, lives with the HTTP faults: the test has
# its own).
SINK_MERGE_ORACLE := deploy/dev/moesif_store.c deploy/dev/moesif_parse.c
$(BUILD)/tests/test_merge: $(call obj,tests/sink/test_merge.c) \
		$(call obj,$(SINK_MERGE_ORACLE)) $(BUILD)/libuserpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(TEST_LIBS) -lpthread -lm
SINK_TEST_BINS += $(BUILD)/tests/test_merge

define sink_test_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(call obj,$(1)) $(BUILD)/libuserpipe.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(TEST_LIBS) -lm
endef
$(foreach t,$(SINK_TESTS),$(eval $(call sink_test_rule,$(t))))

UNIT_TESTS += $(SINK_TEST_BINS)

.PHONY: sink-tests
sink-tests: $(SINK_TEST_BINS)
