# tests/distro/distro.mk: userpipe on another Debian release (issue 13,
# item 5).  `make test-debian13` builds a Debian 13 (trixie)
# chroot with debootstrap (in /var/tmp, linked from build/debian13:
# tests/distro/debian13.sh says why), builds userpipe in
# it (librdkafka from the same source package, deps/librdkafka.mk) and
# runs the unit tests and two end-to-end tests on kafka-dev
# (tests/distro/debian13.sh).  Not in CI: the first run downloads ~150 MB.

DEB13_E2E ?= tests/e2e/test_run_pipeline.sh tests/e2e/test_run_fetch_backoff.sh

.PHONY: test-debian13 debian13-inner
test-debian13:
	@DEB13_E2E='$(DEB13_E2E)' bash tests/distro/debian13.sh

# run inside the chroot by debian13.sh, after `make all`
debian13-inner: all $(UNIT_TESTS)
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VARIANT=$(VARIANT) \
		tests/run-all.sh $(UNIT_TESTS) -- $(DEB13_E2E)
