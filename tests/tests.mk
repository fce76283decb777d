# tests/tests.mk: the unit tests (cmocka, one executable per tested file,
# built to $(BUILD)/tests/<name>) and the shell tests, appended to the
# lists the root Makefile runs in `make check`.
#
# Prerequisite lists are expanded as they are read, so this fragment needs
# the root Makefile to define `obj` before including it.

TESTS_CMOCKA := \
	tests/transform/test_transform.c \
	tests/transform/test_jsontestsuite.c \
	tests/schemas/test_schema.c \
	tests/schemas/test_claims.c \
	tests/core/test_hash.c \
	tests/core/test_log.c \
	tests/cmd/test_ndjson.c \
	tests/cmd/test_config.c \
	tests/cmd/test_parked.c

TESTS_BINS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(TESTS_CMOCKA)))

# One link rule per test: its own object plus the library.
define tests_link_rule
$(BUILD)/tests/$(basename $(notdir $(1))): $(call obj,$(1)) $(BUILD)/libuserpipe.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(TEST_LIBS) -lm
endef
$(foreach t,$(TESTS_CMOCKA),$(eval $(call tests_link_rule,$(t))))

# test_kafka wraps rd_kafka_new to read every client's configuration.
$(BUILD)/tests/test_kafka: $(call obj,tests/core/test_kafka.c) $(BUILD)/libuserpipe.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -Wl,--wrap=rd_kafka_new -o $@ $^ $(TEST_LIBS) -lm
TESTS_BINS += $(BUILD)/tests/test_kafka

UNIT_TESTS += $(TESTS_BINS)
SCRIPT_TESTS += tests/cli/test_transform_cli.sh tests/cli/test_config_reference.sh \
	tests/cli/test_version.sh tests/core/test_includes.sh \
	tests/cli/test_config_secrets.sh

.PHONY: unit-tests
unit-tests: $(TESTS_BINS)
