# tests/e2e/e2e.mk: end-to-end tests of `userpipe run` through the real
# binary against the dev stack on loopback: moesif-dev and a broker,
# kafka-dev (librdkafka's mock cluster) or, for the "apache:" entries, a
# real single-node Apache Kafka (deploy/dev/kafka/, DEV_KAFKA=apache; see
# tests/run-all.sh).  Every test runs on both brokers except these two,
# kafka-dev only because they inject errors into the broker's answers
# through kafka-dev's control socket, which a real broker has no means
# for (each says so and passes when run with DEV_KAFKA=apache):
#   test_run_dlq_backlog.sh   NOT_LEADER_FOR_PARTITION on 60 Produce
#                             requests; the real-cluster equivalent is
#                             tests/kafka/test_kafka_leader_kill.sh (make
#                             test-cluster)
#   test_run_end_offsets.sh   ListOffsets answering
#                             TOPIC_AUTHORIZATION_FAILED; on a real broker
#                             that needs an authorizer and ACLs
# test_run_poison_input.sh runs on both, with one part each that only one
# broker can play (it says so when it skips it): a claim that never comes
# back needs kafka-dev's broker-down of the schema topic's leader alone;
# a misconfigured schema topic needs DescribeConfigs and a deleted one
# DeleteTopics, which librdkafka's mock cluster does not answer.
E2E_TESTS := \
	tests/e2e/test_run_pipeline.sh \
	tests/e2e/test_run_faults.sh \
	tests/e2e/test_run_api_rejected.sh \
	tests/e2e/test_run_unauthorized.sh \
	tests/e2e/test_run_refused_connections.sh \
	tests/e2e/test_run_kill9.sh \
	tests/e2e/test_run_group_takeover.sh \
	tests/e2e/test_schema_shared.sh \
	tests/e2e/test_run_observability.sh \
	tests/e2e/test_dlq_redrive.sh \
	tests/e2e/test_run_fetch_backoff.sh \
	tests/e2e/test_run_live_backfill.sh \
	tests/e2e/test_run_rebalance_retry.sh \
	tests/e2e/test_run_poison_dlq.sh \
	tests/e2e/test_run_reject_all.sh \
	tests/e2e/test_run_tls.sh \
	tests/e2e/test_run_proxy.sh \
	tests/e2e/test_run_secrets.sh \
	tests/e2e/test_run_poison_input.sh
E2E_DEV_ONLY := \
	tests/e2e/test_run_end_offsets.sh \
	tests/e2e/test_run_dlq_backlog.sh

SCRIPT_TESTS += $(E2E_TESTS) $(E2E_DEV_ONLY)
# the same tests on Apache Kafka; they need its jars (make kafka-jars)
ifneq ($(NO_APACHE_KAFKA),1)
SCRIPT_TESTS += $(addprefix apache:,$(E2E_TESTS))
check: kafka-jars
endif
