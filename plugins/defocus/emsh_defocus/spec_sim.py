"""Specifications of the defocus plugin's sim operations (placeholder)."""

OPERATIONS: list = []
