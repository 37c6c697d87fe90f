"""Tools to run the real service, an RTSP server on loopback, and measure it: shared by tests, benchmarks, scripts."""
