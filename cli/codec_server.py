"""`starter.py codec-server`: the Temporal remote codec the Web UI (and `temporal --codec-endpoint`)
calls to read and write payloads sealed with PAYLOAD_ENCRYPTION_KEY.

Protocol: POST /encode and POST /decode (also under /{namespace}/...), body and answer
`{"payloads": [...]}` with each payload in the protobuf JSON form (metadata values and data
base64). The Web UI calls it from the browser, so it answers CORS preflights for the UI's
origin (TEMPORAL_UI_URL) and allows the X-Namespace, Content-Type and Authorization headers.
It decodes for whoever reaches it: keep it on loopback or behind an authenticating proxy.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payloads

from cli.output import fail, say
from ops.codec import (
    SETTING,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    codec_for,
    new_key_line,
)
from settings import ConfigError, Settings

ALLOWED_HEADERS = "Content-Type, X-Namespace, Authorization"
ALLOWED_METHODS = "POST, OPTIONS"
ROUTES = ("encode", "decode")
_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _NewKey(argparse.Action):
    """`--new-key`: print a key; needs no settings (a broken key must not block making one)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: Any = None) -> None:
        namespace.new_key = True
        namespace.needs_settings = False


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `codec-server`."""
    server = commands.add_parser(
        "codec-server",
        help="serve the Web UI's remote codec for encrypted payloads (or --new-key)",
        description="Decode and encode PAYLOAD_ENCRYPTION_KEY payloads for the Temporal Web UI "
        "(Settings -> Codec Server / Data Encoder) and `temporal --codec-endpoint`.",
    )
    server.add_argument(
        "--address", help="host:port to listen on (default CODEC_SERVER_ADDRESS)", default=None
    )
    server.add_argument(
        "--new-key",
        action=_NewKey,
        nargs=0,
        default=False,
        help="print a fresh kid:base64key entry for PAYLOAD_ENCRYPTION_KEY and exit",
    )
    server.add_argument("--key-id", help="with --new-key: the key id (default: random)")
    server.set_defaults(handler=cmd_codec_server)


def cmd_codec_server(args: argparse.Namespace, settings: Settings | None) -> int:
    """Print a new key, or serve the remote codec until Ctrl-C."""
    if args.new_key:
        try:
            say(new_key_line(args.key_id))  # the one line an operator pastes into a secret store
        except PayloadKeyError as exc:
            return fail(str(exc), code=2)
        return 0
    assert settings is not None
    codec = codec_for(settings)
    if codec is None:
        return fail(
            f"{SETTING} is not set: there is nothing to decode; make a key with "
            "`python starter.py codec-server --new-key`",
            code=2,
        )
    host, port = split_address(args.address or settings.codec_server_address)
    origins = ui_origins(settings.temporal_ui_url)
    say(f"codec server on http://{host}:{port} (key id {codec.encrypting_key_id} encrypts)")
    say(
        f"  Web UI {settings.temporal_ui_url}: Settings (gear) -> Codec Server -> "
        f"http://{host}:{port}"
    )
    say(f"  CLI: temporal workflow show --codec-endpoint http://{host}:{port} -w <id>")
    say(f"  allowed origins: {', '.join(origins)}; Ctrl-C stops it")
    app = codec_app(codec, settings.temporal_namespace, origins)
    try:
        web.run_app(app, host=host, port=port, print=None, handle_signals=True)
    except OSError as exc:
        return fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1)
    return 0


def split_address(address: str) -> tuple[str, int]:
    """host:port -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"codec server address: expected host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


def ui_origins(ui_url: str) -> list[str]:
    """The browser origins of the Web UI (localhost and 127.0.0.1 are the same UI)."""
    parts = urlsplit(ui_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if parts.hostname in _LOOPBACK_HOSTS:
        port = f":{parts.port}" if parts.port else ""
        return [f"{parts.scheme}://{host}{port}" for host in _LOOPBACK_HOSTS]
    return [origin]


def codec_app(codec: EncryptionCodec, namespace: str, origins: Iterable[str]) -> web.Application:
    """The remote codec as an aiohttp application (the tests serve it on a free port)."""
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = exc
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
            response.headers["Vary"] = "Origin"
        return response

    def endpoint(encode: bool) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            asked = request.headers.get("X-Namespace") or request.match_info.get("namespace")
            if asked and asked != namespace:
                return _error(403, f"this codec server serves namespace {namespace!r}")
            try:
                payloads = ParseDict(await request.json(), Payloads())
            except (json.JSONDecodeError, ParseError, UnicodeDecodeError, ValueError):
                return _error(400, 'expected {"payloads": [...]} in the protobuf JSON form')
            try:
                if encode:
                    result = await codec.encode(payloads.payloads)
                else:
                    result = await codec.decode(payloads.payloads)
            except PayloadDecryptionError as exc:
                return _error(400, str(exc))
            return web.json_response(MessageToDict(Payloads(payloads=result)) or {"payloads": []})

        return handle

    app = web.Application(middlewares=[cors], client_max_size=16 * 1024 * 1024)
    for route in ROUTES:
        handler = endpoint(route == "encode")
        app.router.add_post(f"/{route}", handler)
        app.router.add_post(f"/{{namespace}}/{route}", handler)
        app.router.add_route("OPTIONS", f"/{route}", handler)
        app.router.add_route("OPTIONS", f"/{{namespace}}/{route}", handler)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def serve_codec(
    codec: EncryptionCodec, namespace: str, origins: Iterable[str], host: str, port: int
) -> web.AppRunner:
    """Start the codec server in the running loop; the caller cleans up the runner."""
    runner = web.AppRunner(codec_app(codec, namespace, origins))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
