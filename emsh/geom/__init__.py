"""Geometry: Euler-angle conventions, point-group symmetry, orientation sampling."""
