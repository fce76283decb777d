# deploy/dev/kafka.mk: kafka-dev, the development Kafka broker (a librdkafka
# mock cluster on loopback), the dev-up/dev-down targets, its test, and the
# start/stop stress test of dev-up/dev-down.

DEV_BINS += $(BUILD)/kafka-dev
SCRIPT_TESTS += tests/dev/test_kafka_dev.sh tests/dev/test_dev_up_stress.sh

# kafka-dev links librdkafka only (never libuserpipe.a): the dev stack
# builds even while a stage is broken.  One job a file: kafka_dev.h.
KAFKA_DEV_SRC := deploy/dev/kafka-dev.c deploy/dev/kafka_dev_util.c \
	deploy/dev/kafka_dev_mock.c deploy/dev/kafka_dev_ctl.c \
	deploy/dev/kafka_dev_cmd.c deploy/dev/kafka_dev_probe.c \
	deploy/dev/kafka_dev_json.c deploy/dev/kafka_dev_load.c

$(BUILD)/kafka-dev: $(call obj,$(KAFKA_DEV_SRC))
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(RDKAFKA_LIBS)

# Start/stop kafka-dev and moesif-dev on loopback; state in DEV_DIR
# (default build/dev).  dev-down needs nothing built, so it works even
# while the tree does not compile.
dev-up: all
	@BUILD=$(BUILD) bash deploy/dev/dev-up.sh

dev-down:
	@bash deploy/dev/dev-down.sh
