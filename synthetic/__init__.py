"""Synthetic cities for tests, demos and benchmarks (`sentinel generate`)."""
