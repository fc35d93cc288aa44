"""Real servers and processes for tests and benchmarks: MinIO, ``shadowdesk server``/``agent``,
llama.cpp's server, a D-Bus session bus and Chromium's command line.

Not part of any installed distribution: ``tests/`` and ``bench/`` import it from the repository root.
Test-only helpers (fixtures, fakes, page objects) stay in ``tests/support/``.
"""
