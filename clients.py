"""Connections shared by worker, starter and tests: Temporal client and ledger pool."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.service import TLSConfig

from ops.codec import data_converter
from ops.telemetry import runtime_for
from settings import ConfigError, Settings


async def make_client(
    settings: Settings,
    *,
    interceptors: Sequence[Interceptor] = (),
    serve_metrics: bool = False,
) -> Client:
    """Connect to Temporal with the data converter (ops/codec.py), the tracing interceptor and
    the runtime (ops/telemetry.py: a worker's client serves Prometheus metrics)."""
    tls: bool | TLSConfig = settings.temporal_tls
    if settings.temporal_tls_cert or settings.temporal_tls_key:
        if not (settings.temporal_tls_cert and settings.temporal_tls_key):
            raise ConfigError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together")
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=data_converter(settings),
                interceptors=[TracingInterceptor(), *interceptors],
                runtime=runtime_for(settings, serve_metrics=serve_metrics),
                tls=tls if api_key is None else (tls or True),
                api_key=api_key,
            ),
            timeout=settings.temporal_connect_timeout_s,
        )
    except (TimeoutError, RuntimeError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else _first_line(exc)
        raise ConfigError(
            f"cannot reach Temporal at TEMPORAL_ADDRESS={settings.temporal_address} "
            f"(namespace {settings.temporal_namespace}): {reason}; start the dev stack with "
            "`python starter.py dev up` or point TEMPORAL_ADDRESS at a running cluster"
        ) from None


def database_url(settings: Settings) -> str:
    """The PostgreSQL URL to use: DATABASE_URL, or the dev stack's embedded server."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from devstack.config import load_dev_config

    dev = load_dev_config(settings.dev_config)
    return f"postgresql://postgres@127.0.0.1:{dev.postgres.port}/{dev.postgres.database}"


async def make_pool(settings: Settings, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open the ledger's asyncpg pool, with a specific error when it cannot connect."""
    url = database_url(settings)
    source = "DATABASE_URL" if settings.database_url else "the embedded PostgreSQL"
    try:
        pool = await asyncio.wait_for(
            asyncpg.create_pool(url, min_size=min_size, max_size=max_size), timeout=10
        )
    except (OSError, TimeoutError, asyncpg.PostgresError, ValueError) as exc:
        hint = (
            "check DATABASE_URL"
            if settings.database_url
            else "start it with `python starter.py dev up` or set DATABASE_URL"
        )
        if isinstance(exc, ValueError):  # the parser quotes pieces of the URL: never echo them
            reason = "the URL cannot be parsed (percent-encode special characters)"
        else:
            reason = "timed out" if isinstance(exc, TimeoutError) else _first_line(exc)
        raise ConfigError(f"cannot connect to {source}: {reason}; {hint}") from None
    assert pool is not None
    return pool


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    for needle, short in _KNOWN_REASONS:
        if needle in text:
            return short
    line = text.splitlines()[0]
    return line if len(line) <= 160 else line[:157] + "..."


_KNOWN_REASONS = (
    ("Connection refused", "connection refused"),
    ("ConnectionRefused", "connection refused"),
    ("dns error", "host name not found"),
    ("failed to lookup address", "host name not found"),
    ("Name or service not known", "host name not found"),
    ("does not exist", "database or role does not exist"),
    ("password authentication failed", "password authentication failed"),
)
