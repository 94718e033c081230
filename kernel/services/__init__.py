"""Kernel-served capabilities: one interface per file."""
