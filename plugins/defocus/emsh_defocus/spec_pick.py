"""Specifications of the defocus plugin's pick operations (placeholder)."""

OPERATIONS: list = []
