"""Benchmarks: each prints a table and writes JSON, measured against a peer in the same run."""
