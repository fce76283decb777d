# tests/deploy/image.mk: `make image-test` (issue 19, item 5): the container
# image of deploy/docker/Dockerfile built and run, not only read.  Makes
# the base image debian:12-slim from Debian's archive (debootstrap,
# imported with buildah; cached), builds the Dockerfile unchanged with
# `buildah bud --isolation chroot`, checks the image (numeric non-root
# user, the same userpipe and librdkafka as `make` builds, no librdkafka
# shared library) and runs its ENTRYPOINT on the dev stack until the
# sample events reach moesif-dev and the offsets are committed
# (tests/deploy/test_image.sh says what and why).  .ci/run runs it.
#
# Measured on the shared 2-core development machine, `time make
# image-test` with userpipe built (as in CI, after `make test`), packages
# from deb.debian.org:
#   cold  2 min 25 s and 2 min 4 s (two runs): `make image-clean` and
#         buildah and debootstrap removed first; installing them ~10 s,
#         debootstrap 29 s / 37 s, the slim trim and the import 9 s / 6 s,
#         buildah bud 89 s / 65 s, checks and run 8 s
#   warm  1 min 38 s and 1 min 24 s: the base image cached; buildah bud
#         86 s / 73 s
# The image build itself runs every stage each time (apt-get in both
# stages, librdkafka and userpipe compiled in the build stage): it is most
# of either time.  .ci/run gives the step 10 minutes.
#
# `make image-clean` removes the cached base image, the storage and the
# logs (IMAGE_DIR, /var/tmp/userpipe-image-<work tree folder>).

# debootstrap for the base image, buildah to import, build and run it
IMAGE_DEB_PKGS := debootstrap buildah

.PHONY: image-test image-clean
image-test:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_PKGS) $(IMAGE_DEB_PKGS)"
	$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) USERPIPE=$(abspath $(BUILD)/userpipe) VERBOSE=1 \
		tests/run-all.sh -- tests/deploy/test_image.sh

image-clean:
	@bash tests/deploy/test_image.sh clean
