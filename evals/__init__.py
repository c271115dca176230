"""Evaluations: verifiable checks on answers and the multi-turn suites built from them."""
