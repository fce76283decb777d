# bench.mk: the transform benchmark (tests/bench/bench_transform.c).
BENCH_BINS += $(BUILD)/bench_transform
BENCHES += tests/bench/bench_transform.sh

$(BUILD)/bench_transform: $(call obj,tests/bench/bench_transform.c) $(BUILD)/libuserpipe.a
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(USERPIPE_LIBS) -lm
