# bench/speed.mk: filled in by the benchmark suite
