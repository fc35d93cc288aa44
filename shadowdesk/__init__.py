"""Shadowdesk: the `shadowdesk` CLI, telemetry set-up, helpers shared by agent and cloud, and the demo."""
