# tests/distro/distro.mk: userpipe on another Debian release (issue 13,
# item 5).  `make test-debian13` builds a Debian 13 (trixie, librdkafka
# 2.8.0) chroot with debootstrap (in /var/tmp, linked from build/debian13:
# tests/distro/debian13.sh says why), builds userpipe in
# it and runs the unit tests and two end-to-end tests on kafka-dev
# (tests/distro/debian13.sh; test_run_refill.sh passes there only if the
# fetch.queue.backoff.ms path of librdkafka >= 2.2.0 keeps the fetches
# going).  Not in CI: the first run downloads ~150 MB.

DEB13_E2E ?= tests/e2e/test_run_pipeline.sh tests/e2e/test_run_refill.sh

.PHONY: test-debian13 debian13-inner
test-debian13:
	@DEB13_E2E='$(DEB13_E2E)' bash tests/distro/debian13.sh

# run inside the chroot by debian13.sh, after `make all`
debian13-inner: all $(UNIT_TESTS)
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh $(UNIT_TESTS) -- $(DEB13_E2E)
