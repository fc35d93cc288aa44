"""Recall: what a user saw, made searchable (OCR, moments, hybrid index, search, ask, erasure)."""

import os

# LanceDB logs a deprecation warning from Rust on every hybrid search (score columns it cannot be asked
# to drop from Python); keep its log to errors unless the operator asks for more.
os.environ.setdefault("LANCEDB_LOG", "error")
