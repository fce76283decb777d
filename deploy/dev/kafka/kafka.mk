# deploy/dev/kafka/kafka.mk: the Apache Kafka broker of the end-to-end
# tests (issue 13).  `make kafka-jars` copies the broker of pom.xml and its
# runtime dependencies into build/kafka/libs once; later runs find them
# and ask no registry.  java and mvn come from Debian where missing.

KAFKA_LIBS := build/kafka/libs
KAFKA_DEB_PKGS := default-jre-headless maven

.PHONY: kafka-jars
kafka-jars: $(KAFKA_LIBS)/.complete

$(KAFKA_LIBS)/.complete: deploy/dev/kafka/pom.xml
	@if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then \
		echo "installing Debian packages: $(KAFKA_DEB_PKGS)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(KAFKA_DEB_PKGS); \
	fi
	@rm -rf $(KAFKA_LIBS) && mkdir -p $(KAFKA_LIBS)
	cd deploy/dev/kafka && mvn -q -B dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(abspath $(KAFKA_LIBS))
	@ls $(KAFKA_LIBS) >$@.tmp && mv $@.tmp $@
