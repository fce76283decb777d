# tests/deploy.mk: the check of the deployment artefacts of deploy/
# (systemd unit, Dockerfile, Kubernetes manifests), run by `make check`.
SCRIPT_TESTS += tests/deploy/test_deploy_artifacts.sh
