"""Deterministic orchestration: one module per workflow."""
