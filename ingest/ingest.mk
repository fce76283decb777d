# ingest/ingest.mk: the unit tests of ingest/ (cmocka, one executable per
# tested file, built to $(BUILD)/tests/<name>), appended to UNIT_TESTS.
# The sources are INGEST_SRC in the root Makefile.
#
# None needs a broker: they test the Kafka-free parts, the watermark of
# settled offsets (watermark.c) and the end-offset rules (end_offsets.c).

INGEST_TESTS := \
	tests/ingest/test_watermark.c \
	tests/ingest/test_end_offsets.c

INGEST_TEST_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(INGEST_TESTS)))

# each test: its own object plus the library, by tests/tests.mk's rule
# (included before this fragment)
$(foreach t,$(INGEST_TESTS),$(eval $(call tests_link_rule,$(t))))

UNIT_TESTS += $(INGEST_TEST_BINS)

.PHONY: ingest-tests
ingest-tests: $(INGEST_TEST_BINS)
