"""Simulators shipped for tests, the demo and benchmarks."""
