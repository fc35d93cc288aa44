"""Benchmarks of Shadowdesk against real parts (MinIO, gRPC, Xvfb); results are in docs/benchmarks.md.

* ``python -m bench.ingest_bench``: ingest throughput and ack latency of one server core.
* ``python -m bench.agent_overhead_bench``: CPU, memory and bytes sent of the session agent.
"""
