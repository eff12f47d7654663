"""The cryptography of personal data: AES-256-GCM values under per-person data keys, and
data keys wrapped (AES-256-GCM too) by a key-encryption key (KEK) that never touches the
database.

- A sealed value is `pii:1:` + base64url(12-byte nonce | ciphertext | 16-byte tag); the
  subject (the person's id) is its associated data, so a value moved into another
  person's event does not open under that person's key.
- A wrapped data key is nonce | ciphertext | tag under the KEK, with the subject as
  associated data: swapping wrapped keys between people's rows does not open them either.
- A KEK is known by an id derived from it (`kek_id`), stored next to each wrapped key, so
  that after a rotation each key says which KEK opens it.

Wrong keys and tampered bytes raise `SealBroken`; nothing here ever returns garbage.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import KeyUnavailable, SealBroken
from .personal import SEALED_PREFIX

__all__ = [
    "KeyEncryptionKeys",
    "kek_id",
    "new_data_key",
    "open_value",
    "seal_value",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES = 32
_NONCE = 12


def _aad(purpose: str, subject: str) -> bytes:
    return f"microshop:{purpose}:{subject}".encode()


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def kek_id(kek: bytes) -> str:
    """A KEK's public name: 16 hex digits of a hash that reveals nothing about it."""
    return hashlib.sha256(b"microshop-kek-id:" + kek).hexdigest()[:16]


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < _NONCE + 16:
        raise SealBroken("sealed bytes are too short")
    try:
        return AESGCM(key).decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
    except InvalidTag:
        raise SealBroken("wrong key, or the sealed bytes were changed") from None


def seal_value(data_key: bytes, subject: str, plaintext: str) -> str:
    """`plaintext` sealed for `subject` with its data key."""
    sealed = _seal(data_key, plaintext.encode(), _aad("value", subject))
    return SEALED_PREFIX + base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_value(data_key: bytes, subject: str, sealed: str) -> str:
    """The plaintext of a value `seal_value` made for `subject` (SealBroken otherwise)."""
    if not sealed.startswith(SEALED_PREFIX):
        raise SealBroken("not a sealed value")
    text = sealed[len(SEALED_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SealBroken("a sealed value that is not base64url") from None
    return _open(data_key, raw, _aad("value", subject)).decode()


def wrap_key(kek: bytes, subject: str, data_key: bytes) -> bytes:
    return _seal(kek, data_key, _aad("data-key", subject))


def unwrap_key(kek: bytes, subject: str, wrapped: bytes) -> bytes:
    return _open(kek, wrapped, _aad("data-key", subject))


@dataclasses.dataclass(frozen=True, slots=True)
class KeyEncryptionKeys:
    """The KEK that wraps new data keys (`current`) and older ones that still unwrap keys
    not yet rewrapped after a rotation (`previous`)."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        for key in (self.current, *self.previous):
            if len(key) != KEY_BYTES:
                raise ValueError(f"a key-encryption key is {KEY_BYTES} bytes")

    def __repr__(self) -> str:  # never print key material
        return f"KeyEncryptionKeys(current={self.current_id}, previous={len(self.previous)})"

    @classmethod
    def parse(cls, text: str) -> KeyEncryptionKeys:
        """From `base64[,base64...]`: 32-byte keys, the current one first (ValueError)."""
        keys = []
        for item in (part.strip() for part in text.split(",")):
            try:
                keys.append(base64.urlsafe_b64decode(item + "=" * (-len(item) % 4)))
            except (binascii.Error, ValueError):
                raise ValueError("each key is base64 of 32 bytes") from None
        if not keys or not keys[0]:
            raise ValueError("no key given")
        return cls(keys[0], tuple(keys[1:]))

    @staticmethod
    def generate() -> str:
        """A new KEK as `parse` reads it."""
        return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()

    @property
    def current_id(self) -> str:
        return kek_id(self.current)

    def by_id(self, kek: str) -> bytes:
        for key in (self.current, *self.previous):
            if kek_id(key) == kek:
                return key
        raise KeyUnavailable(
            f"data keys are wrapped by key-encryption key {kek}, which is not configured"
            " (PII_KEY_ENCRYPTION_KEY lists the current key first, then older ones)"
        )
