# tests/kafka/kafka.mk: the tests only a real Apache Kafka allows (issue
# 13), each asserting nothing lost.  Run times measured on the 2-core dev
# machine (shared with other builds), one test at a time:
#
#   make test (all five, ~3 min together; CI's make test step goes from
#   ~11 to ~13.5 min of its 25, and the sanitizer step runs none of them):
#     test_kafka_autocreate.sh   8 s, one node: first start on
#                                auto.create.topics.enable=true,
#                                num.partitions=6: one-partition schema
#                                topic, nothing else created
#     test_kafka_group_kill.sh   19 s, one node: three instances in one
#                                group, one kill -9, one stopped: the
#                                survivor's commits exact
#     test_kafka_leader_kill.sh  57-65 s, three nodes: kill -9 the broker
#                                leading the source, dead-letter and schema
#                                partitions and coordinating the group, bring
#                                it back; no dead-letter duplicate
#                                (idempotence)
#     test_kafka_outage.sh       68-76 s, one node: every broker down 20 s
#                                mid-run, then up; RSS held, resumed
#     test_kafka_schema_race.sh  19-23 s, three nodes: three instances race
#                                to claim thirty keys
#   make test-cluster: the last three alone (~2.5 min).
#
# The secured brokers (issue 19), one node each with a CA of its own made
# by openssl, two instances racing for the shared schema, refusals that
# must exit 2 with their sentence (~1.5-2 min together, CI's make test step
# grows by as much; make test-secure runs them alone; ASan measured the
# same 16-38 s):
#     test_kafka_sasl_scram.sh   21-26 s: SASL_SSL, SCRAM-SHA-512; a wrong
#                                password (run, schema show, dlq stats),
#                                the brokers' CA not trusted
#     test_kafka_sasl_plain.sh   18-24 s: SASL_SSL, PLAIN; a wrong password;
#                                kcat reads the dead-letter topic over it
#     test_kafka_mtls.sh         16-30 s: SSL with ssl.client.auth=required;
#                                CA not trusted, no client certificate, one
#                                from another CA
#     test_kafka_acls.sh         25-38 s: StandardAuthorizer, no ACL means
#                                deny, exactly README.md's ACLs; one ACL
#                                less: source Read, group Read, schema
#                                Write, dead-letter Write
#
# They are named, not wildcarded: a test gone missing fails (issue 14).
KAFKA_TESTS := tests/kafka/test_kafka_autocreate.sh tests/kafka/test_kafka_group_kill.sh
KAFKA_CLUSTER_TESTS := tests/kafka/test_kafka_leader_kill.sh \
	tests/kafka/test_kafka_outage.sh tests/kafka/test_kafka_schema_race.sh
KAFKA_SECURE_TESTS := tests/kafka/test_kafka_sasl_scram.sh \
	tests/kafka/test_kafka_sasl_plain.sh tests/kafka/test_kafka_mtls.sh \
	tests/kafka/test_kafka_acls.sh

# the secured tests make their CAs and certificates with openssl's command
DEB_PKGS += openssl

ifneq ($(NO_APACHE_KAFKA),1)
SCRIPT_TESTS += $(addprefix apache:,$(KAFKA_TESTS) $(KAFKA_CLUSTER_TESTS) \
	$(KAFKA_SECURE_TESTS))
endif

.PHONY: test-cluster
test-cluster: deps
	$(MAKE) --no-print-directory all kafka-jars
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh -- $(addprefix apache:,$(KAFKA_CLUSTER_TESTS))

.PHONY: test-secure
test-secure: deps
	$(MAKE) --no-print-directory all kafka-jars
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh -- $(addprefix apache:,$(KAFKA_SECURE_TESTS))
