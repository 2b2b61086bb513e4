"""Payload encryption: AES-GCM codec, key rotation, passthrough, key validation, remote codec."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from cli.codec_server import codec_app, ui_origins
from cli.main import main
from devstack.config import load_dev_config
from devstack.stack import DevStack
from devstack.temporal import dev_server_args
from ops.codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    EncryptionCodec,
    PayloadDecryptionError,
    PayloadKeyError,
    data_converter,
    new_key_line,
    parse_key_ring,
)
from settings import ROOT, ConfigError, load_settings
from trading.trade_models import TradeSpec

OLD = new_key_line("old")
NEW = new_key_line("new")
STRANGER = new_key_line("stranger")


def codec(keys: str) -> EncryptionCodec:
    return EncryptionCodec(parse_key_ring(keys))


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("PAYLOAD_ENCRYPTION_KEY", raising=False)
    monkeypatch.chdir(str(tmp_path))  # no developer .env leaks in


async def test_round_trip_hides_the_payload_and_restores_it_whole() -> None:
    sealer = codec(NEW)
    original = Payload(
        metadata={"encoding": b"json/plain", "messageType": b"TradeSpec"},
        data=b'{"symbol":"AAPL","qty":"37","stop_price":"142.51"}',
    )
    [sealed] = await sealer.encode([original])
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == b"new"
    assert set(sealed.metadata) == {"encoding", KEY_ID_METADATA}  # the type name is sealed too
    for visible in (b"AAPL", b"142.51", b'"37"', b"TradeSpec"):
        assert visible not in sealed.SerializeToString()
    assert await sealer.decode([sealed]) == [original]


async def test_each_payload_gets_its_own_nonce() -> None:
    sealer = codec(NEW)
    first, second = await sealer.encode([plain("same"), plain("same")])
    assert first.data[:12] != second.data[:12]
    assert first.data != second.data


async def test_rotation_new_key_encrypts_old_key_still_decrypts() -> None:
    before = codec(OLD)
    [written_before] = await before.encode([plain("written under the old key")])
    rotated = codec(f"{NEW},{OLD}")
    [written_after] = await rotated.encode([plain("written under the new key")])
    assert written_after.metadata[KEY_ID_METADATA] == b"new"
    assert await rotated.decode([written_before, written_after]) == [
        plain("written under the old key"),
        plain("written under the new key"),
    ]


async def test_unknown_key_id_is_named_and_the_key_is_not() -> None:
    [sealed] = await codec(STRANGER).encode([plain("x")])
    reader = codec(f"{NEW},{OLD}")
    with pytest.raises(PayloadDecryptionError, match="'stranger'") as caught:
        await reader.decode([sealed])
    message = str(caught.value)
    for line in (NEW, OLD, STRANGER):
        assert line.split(":")[1] not in message


@pytest.mark.parametrize("where", ["data", "nonce", "key_id"])
async def test_tampering_fails_authentication(where: str) -> None:
    keys = f"{NEW},{OLD}"
    [sealed] = await codec(keys).encode([plain("stop 142.51")])
    forged = Payload()
    forged.CopyFrom(sealed)
    if where == "data":
        forged.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    elif where == "nonce":
        forged.data = bytes([sealed.data[0] ^ 1]) + sealed.data[1:]
    else:  # relabelled as sealed by the other key of the ring: the key id is bound
        forged.metadata[KEY_ID_METADATA] = b"old"
    with pytest.raises(PayloadDecryptionError, match="failed authentication"):
        await codec(keys).decode([forged])


async def test_payloads_never_encrypted_pass_through() -> None:
    reader = codec(NEW)
    unencrypted = [plain("saved before the key was set"), Payload(metadata={}, data=b"")]
    assert await reader.decode(unencrypted) == unencrypted


async def test_data_converter_seals_a_trade_spec_and_reads_old_plain_payloads() -> None:
    settings = load_settings(payload_encryption_key=NEW)
    converter = data_converter(settings)
    spec = TradeSpec(trade_id="t-1", symbol="AAPL", qty=Decimal(37), stop_price=Decimal("142.51"))
    [sealed] = await converter.encode([spec])
    assert b"AAPL" not in sealed.data and b"142.51" not in sealed.data
    assert await converter.decode([sealed], [TradeSpec]) == [spec]
    [unsealed] = await pydantic_data_converter.encode([spec])
    assert await converter.decode([unsealed], [TradeSpec]) == [spec]


def test_without_a_key_the_plain_pydantic_converter_is_used() -> None:
    assert data_converter(load_settings()) is pydantic_data_converter
    assert data_converter(load_settings(payload_encryption_key="")) is pydantic_data_converter


def test_new_key_line_is_a_valid_32_byte_entry() -> None:
    kid, _, encoded = new_key_line("2025-01").partition(":")
    assert kid == "2025-01"
    assert len(base64.b64decode(encoded)) == 32
    assert new_key_line() != new_key_line()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("no-colon-here", "entry 1 is not kid:base64key"),
        ("k1:" + base64.b64encode(b"x" * 16).decode(), "entry 1 (key id 'k1')"),
        ("k1:not*base64!", "exactly 32 random bytes"),
        (f"{NEW},{NEW}", "key id 'new' appears twice"),
        ("bad id:" + base64.b64encode(b"x" * 32).decode(), "entry 1: key id must be"),
        (f"{NEW},k2:", "entry 2 is not kid:base64key"),
    ],
)
def test_a_bad_key_is_one_config_error_line_naming_the_setting(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(payload_encryption_key=value)
    message = str(caught.value)
    assert "PAYLOAD_ENCRYPTION_KEY" in message and reason in message
    assert "\n" not in message
    for secret in (part.partition(":")[2] for part in value.split(",")):
        if len(secret) > 4:
            assert secret not in message


def test_key_list_parsing_accepts_url_safe_and_unpadded_keys() -> None:
    raw = bytes(range(32))
    urlsafe = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    ring = parse_key_ring(f" a:{urlsafe} , b:{base64.b64encode(raw).decode()} ")
    assert ring.encrypting.key_id == "a"
    assert [k.secret for k in ring.keys] == [raw, raw]
    assert raw.hex() not in repr(ring)
    with pytest.raises(PayloadKeyError):
        parse_key_ring(" , ")


def test_cli_exits_2_on_a_bad_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYLOAD_ENCRYPTION_KEY", "k1:dG9vLXNob3J0")
    assert main(["settings", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "PAYLOAD_ENCRYPTION_KEY" in err
    assert "dG9vLXNob3J0" not in err


def test_new_key_needs_no_valid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PAYLOAD_ENCRYPTION_KEY", "broken")
    assert main(["codec-server", "--new-key", "--key-id", "k2"]) == 0
    line = capsys.readouterr().out.strip()
    assert parse_key_ring(line).encrypting.key_id == "k2"


# --- the remote codec the Web UI calls ------------------------------------------------------

UI = "http://127.0.0.1:8233"
CodecClient = TestClient[web.Request, web.Application]


@pytest_asyncio.fixture
async def codec_http() -> AsyncIterator[CodecClient]:
    app = codec_app(codec(f"{NEW},{OLD}"), "default", ui_origins(UI))
    async with TestClient(TestServer(app)) as client:
        yield client


def as_json(*payloads: Payload) -> dict[str, object]:
    return MessageToDict(Payloads(payloads=list(payloads)))


async def test_codec_server_encodes_and_decodes_in_proto_json(
    codec_http: CodecClient,
) -> None:
    encoded = await codec_http.post("/encode", json=as_json(plain("AAPL 142.51")))
    assert encoded.status == 200
    sealed = (await encoded.json())["payloads"]
    assert base64.b64decode(sealed[0]["metadata"]["encoding"]) == ENCRYPTED_ENCODING
    assert "AAPL" not in json.dumps(sealed)
    decoded = await codec_http.post(
        "/decode", json={"payloads": sealed}, headers={"X-Namespace": "default"}
    )
    assert decoded.status == 200
    assert await decoded.json() == as_json(plain("AAPL 142.51"))
    namespaced = await codec_http.post("/default/decode", json={"payloads": sealed})
    assert await namespaced.json() == as_json(plain("AAPL 142.51"))


async def test_codec_server_answers_the_ui_preflight(
    codec_http: CodecClient,
) -> None:
    for origin in (UI, "http://localhost:8233"):
        response = await codec_http.options(
            "/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert "x-namespace" in allowed and "content-type" in allowed
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
    stranger = await codec_http.options(
        "/decode",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "Access-Control-Allow-Origin" not in stranger.headers


async def test_codec_server_errors_are_clear(codec_http: CodecClient) -> None:
    [foreign] = await codec(STRANGER).encode([plain("x")])
    unknown = await codec_http.post("/decode", json=as_json(foreign))
    assert unknown.status == 400
    assert "'stranger'" in (await unknown.json())["error"]
    garbage = await codec_http.post("/decode", data=b"not json")
    assert garbage.status == 400
    other_namespace = await codec_http.post(
        "/decode", json=as_json(plain("x")), headers={"X-Namespace": "prod"}
    )
    assert other_namespace.status == 403


# --- the dev stack ----------------------------------------------------------------------------


def test_dev_up_runs_the_codec_server_and_points_the_web_ui_at_it(tmp_path: Path) -> None:
    config = load_dev_config(ROOT / "temporal-dev.yaml")
    plain_stack = DevStack(load_settings(state_dir=tmp_path), config, lambda _: None)
    assert plain_stack._codec_endpoint() is None
    assert "--ui-codec-endpoint" not in dev_server_args(config.temporal, None, None)
    settings = load_settings(
        state_dir=tmp_path, payload_encryption_key=NEW, codec_server_address="127.0.0.1:18889"
    )
    stack = DevStack(settings, config, lambda _: None)
    endpoint = stack._codec_endpoint()
    assert endpoint == "http://127.0.0.1:18889"
    args = dev_server_args(config.temporal, None, endpoint)
    assert args[args.index("--ui-codec-endpoint") + 1] == endpoint
