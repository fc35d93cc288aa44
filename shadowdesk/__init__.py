"""Shadowdesk: the `shadowdesk` CLI, telemetry set-up, and the all-in-one demo."""
