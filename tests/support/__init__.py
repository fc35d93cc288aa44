"""Test-only helpers shared by the suites (span capture, the sidebar page); real servers are in harness/."""
