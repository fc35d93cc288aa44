"""Test-only helpers shared by the test modules, one module per topic (span capture, the sidebar page, the
cloud tests' agent...); real servers are in harness/. Test modules import helpers from here, never from
another test module or a conftest.py, which hold only fixtures (``tests/test_layering.py`` checks)."""
