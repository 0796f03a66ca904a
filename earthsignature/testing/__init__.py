"""Real servers on loopback for tests and benchmarks: an S3 server (SeaweedFS), a byte-counting
TCP proxy. Each starts on free ports and is stopped by its owner."""
