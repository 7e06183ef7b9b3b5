"""Prometheus metrics of the long-running workers."""
