# bench/mem.mk: filled in by the benchmark suite
