"""The data converter every client uses (pydantic; encrypted with PAYLOAD_ENCRYPTION_KEY).

With a key set, every payload (workflow and activity inputs and results, signals, updates,
queries, memos, heartbeat details, failure messages) leaves the process sealed with AES-GCM:

    metadata  encoding=binary/encrypted, encryption-key-id=<kid>
    data      96-bit random nonce || AES-256-GCM(serialized original Payload, aad=<kid>)

PAYLOAD_ENCRYPTION_KEY is a list `kid:base64key[,kid2:base64key...]`: the first key encrypts,
every key decrypts, so a key is rotated by putting a new one first and keeping the old ones
until no history that needs them is kept. A payload without the encrypted encoding passes
through decode unchanged: histories written before the key was set still replay, and workers
can be switched over one at a time.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

if TYPE_CHECKING:
    from settings import Settings

ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
SETTING = "PAYLOAD_ENCRYPTION_KEY"
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Binds the ciphertext to its key id (and to this scheme): a payload whose key id metadata
# was swapped for another key's id fails authentication instead of decrypting.
_AAD_PREFIX = b"durable-trader/payload/v1:"


class PayloadKeyError(ValueError):
    """PAYLOAD_ENCRYPTION_KEY cannot be parsed; the message names the entry, never the key."""


class PayloadDecryptionError(Exception):
    """An encrypted payload cannot be opened (unknown key id, tampered or malformed)."""


@dataclass(frozen=True)
class PayloadKey:
    """One AES-256 key and the id written into the payloads it seals."""

    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The keys of PAYLOAD_ENCRYPTION_KEY: `encrypting` seals, every key in `keys` opens."""

    encrypting: PayloadKey
    keys: tuple[PayloadKey, ...]

    def key(self, key_id: str) -> PayloadKey | None:
        """The key with this id, if the ring holds it."""
        return next((k for k in self.keys if k.key_id == key_id), None)


def parse_key_ring(text: str) -> KeyRing:
    """Parse `kid:base64key[,kid2:base64key...]` (32-byte keys); errors name the key id only."""
    entries = [entry.strip() for entry in text.split(",") if entry.strip()]
    if not entries:
        raise PayloadKeyError(
            f"{SETTING}: no key given; expected kid:base64key (make one with "
            "`python starter.py codec-server --new-key`)"
        )
    keys: list[PayloadKey] = []
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        where = f"{SETTING}: entry {position}"
        if not sep or not encoded:
            raise PayloadKeyError(f"{where} is not kid:base64key (the key id and a colon first)")
        if not _KEY_ID.fullmatch(key_id):
            raise PayloadKeyError(
                f"{where}: key id must be 1-64 letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit)"
            )
        if any(k.key_id == key_id for k in keys):
            raise PayloadKeyError(f"{where}: key id {key_id!r} appears twice")
        secret = _decode_base64(encoded)
        if secret is None or len(secret) != KEY_BYTES:
            raise PayloadKeyError(
                f"{where} (key id {key_id!r}): the key must be base64 of exactly "
                f"{KEY_BYTES} random bytes"
            )
        keys.append(PayloadKey(key_id, secret))
    return KeyRing(encrypting=keys[0], keys=tuple(keys))


def _decode_base64(encoded: str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is not base64."""
    standard = encoded.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def new_key_line(key_id: str | None = None) -> str:
    """A fresh `kid:base64key` entry for PAYLOAD_ENCRYPTION_KEY (32 random bytes)."""
    kid = key_id or f"k{secrets.token_hex(4)}"
    if not _KEY_ID.fullmatch(kid):
        raise PayloadKeyError(f"key id {kid!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return f"{kid}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM payload codec: seals with the ring's first key, opens with any of its keys."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._ciphers = {key.key_id: AESGCM(key.secret) for key in ring.keys}

    @property
    def encrypting_key_id(self) -> str:
        """The id new payloads are sealed under."""
        return self._ring.encrypting.key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Seal each payload (serialized whole, metadata included) under the first key."""
        return [self.seal(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Open each encrypted payload; pass through payloads that were never encrypted."""
        return [self.open(payload) for payload in payloads]

    def seal(self, payload: Payload) -> Payload:
        """One payload, encrypted."""
        key_id = self._ring.encrypting.key_id
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(deterministic=True), _aad(key_id)
        )
        return Payload(
            metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id.encode("ascii")},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        """One payload, decrypted (unchanged when it is not encrypted)."""
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if raw_id is None:
            raise PayloadDecryptionError(f"encrypted payload carries no {KEY_ID_METADATA}")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which {SETTING} does not hold "
                f"(it holds {', '.join(repr(k) for k in self._ciphers)}); add that key to "
                "the list to read it"
            )
        if len(payload.data) <= NONCE_BYTES:
            raise PayloadDecryptionError(f"encrypted payload (key id {key_id!r}) is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _aad(key_id))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"encrypted payload (key id {key_id!r}) failed authentication: it was altered, "
                "or sealed by a different key under the same id"
            ) from None
        return Payload.FromString(plain)


def _aad(key_id: str) -> bytes:
    return _AAD_PREFIX + key_id.encode("ascii")


def codec_for(settings: Settings) -> EncryptionCodec | None:
    """The payload codec for PAYLOAD_ENCRYPTION_KEY, or None when no key is set."""
    if settings.payload_encryption_key is None:
        return None
    text = settings.payload_encryption_key.get_secret_value()
    if not text.strip():
        return None
    return EncryptionCodec(parse_key_ring(text))


def encrypted_data_converter(codec: PayloadCodec) -> DataConverter:
    """The pydantic data converter with `codec`; failure messages and stack traces become
    encoded attributes, so the codec seals them too."""
    return DataConverter(
        payload_converter_class=PydanticPayloadConverter,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter (with the payload codec when a key is set)."""
    codec = codec_for(settings)
    return pydantic_data_converter if codec is None else encrypted_data_converter(codec)
