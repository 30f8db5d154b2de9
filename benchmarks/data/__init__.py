"""Input benchmarks: folder indexing at scale and loader throughput against a training step."""
