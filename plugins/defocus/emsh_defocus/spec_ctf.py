"""Specifications of the defocus plugin's ctf operations (placeholder)."""

OPERATIONS: list = []
