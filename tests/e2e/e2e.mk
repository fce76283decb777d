# tests/e2e/e2e.mk: end-to-end tests of `userpipe run` through the real
# binary against the dev stack (kafka-dev, moesif-dev) on loopback.
SCRIPT_TESTS += \
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
	tests/e2e/test_run_refill.sh \
	tests/e2e/test_run_end_offsets.sh \
	tests/e2e/test_run_dlq_backlog.sh \
	tests/e2e/test_run_live_backfill.sh \
	tests/e2e/test_run_rebalance_retry.sh
