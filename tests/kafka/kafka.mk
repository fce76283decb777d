# tests/kafka/kafka.mk: the tests only a real Apache Kafka allows (issue
# 13), each asserting nothing lost.  Which run where:
#
#   make test (one node, ~1 min together):
#     test_kafka_autocreate.sh   first start on auto.create.topics.enable
#                                =true, num.partitions=6: one-partition
#                                schema topic, nothing else created
#     test_kafka_group_kill.sh   three instances in one group, one kill -9,
#                                one stopped: the survivor's commits exact
#   make test-cluster (three nodes, ~5 min; not in CI's make test, whose
#   90 minutes on 2 cores they would crowd with 3 JVMs a test):
#     test_kafka_leader_kill.sh  kill -9 the dead-letter (and schema,
#                                source) leader mid-run, bring it back; no
#                                dead-letter duplicate (idempotence)
#     test_kafka_outage.sh       every broker down 20 s mid-run, then up
#     test_kafka_schema_race.sh  three instances race to claim new keys
KAFKA_TESTS := tests/kafka/test_kafka_autocreate.sh tests/kafka/test_kafka_group_kill.sh
KAFKA_CLUSTER_TESTS := tests/kafka/test_kafka_leader_kill.sh \
	tests/kafka/test_kafka_outage.sh tests/kafka/test_kafka_schema_race.sh

ifneq ($(NO_APACHE_KAFKA),1)
SCRIPT_TESTS += $(addprefix apache:,$(wildcard $(KAFKA_TESTS)))
endif

.PHONY: test-cluster
test-cluster: deps
	$(MAKE) --no-print-directory all kafka-jars
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh -- $(addprefix apache:,$(wildcard $(KAFKA_CLUSTER_TESTS)))
