"""Real servers and helpers shared by the test suites."""
