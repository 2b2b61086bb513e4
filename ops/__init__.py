"""Operations: metrics, health probes, traces, the payload codec, alerts to people, prelive.

Each module is one concern the worker, the CLI or the tests plug in through a small seam
(clients.py builds the client with `codec.data_converter` and `telemetry.runtime_for`;
worker.py runs `health.health_server` and checks `live_gate.require_prelive`; the starter
and the worker call `tracing.configure_tracing`).
"""
