"""The bottom floor: helpers shared by the agent, the cloud tier, the CLI, tests and benchmarks.

``patterns`` (linear-time title patterns), ``redaction`` (credentials out of logs and spans),
``telemetry`` (OpenTelemetry set-up for each entrypoint) and ``desktop`` (a virtual X11 desktop for
the demo, tests and benchmarks). It imports nothing of ours but ``protos`` and needs only the agent's
dependencies, so every install has it (``tests/test_layering.py``, ``tests/test_packaging.py``).
"""
