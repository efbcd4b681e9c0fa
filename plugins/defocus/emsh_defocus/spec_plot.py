"""Specifications of the defocus plugin's plot operations (placeholder)."""

OPERATIONS: list = []
