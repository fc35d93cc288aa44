"""Ops diagnostics: detect problems in every session from the committed stream, grouped into incidents."""
