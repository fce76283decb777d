# pipeline.mk: the pipeline part of `make bench` (issue 4): userpipe run
# from kafka-dev to moesif-dev over 1,000,000 events, against kcat's raw
# consume rate, with 429/500 faults and each gzip setting
# (tests/bench/bench_pipeline.sh; BENCH_EVENTS=50000 for a short run).
BENCHES += tests/bench/bench_pipeline.sh
