# pipeline.mk: the pipeline part of `make bench` (issue 4): userpipe run
# from kafka-dev to moesif-dev over 1,000,000 events, against kcat's raw
# consume rate, with 429/500 faults and each gzip setting
# (tests/bench/bench_pipeline.sh; BENCH_EVENTS=50000 for a short run).
BENCHES += tests/bench/bench_pipeline.sh
# hot users (issue 21): one user with 10% or 50% of a backfill, one
# session token or a new one each update, at 0 and 50 ms; today's
# workloads beside them, against BENCH_OLD_USERPIPE when given
BENCHES += tests/bench/bench_hot.sh

# and on a real Apache Kafka (issue 13): one KRaft node, kcat's rate and
# the pipeline's on it, printed beside kafka-dev's (tests/bench/bench_apache.sh,
# ~1.5 min; BENCH_APACHE_EVENTS); NO_APACHE_KAFKA=1 leaves it out
ifneq ($(NO_APACHE_KAFKA),1)
BENCHES += tests/bench/bench_apache.sh
BENCH_BINS += kafka-jars
endif
