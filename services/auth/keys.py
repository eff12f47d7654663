"""RS256 signing keys: given by JWT_PRIVATE_KEY, or generated once and kept in Postgres."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from eventstore.pg import Pool

__all__ = ["KeyStore", "kid_of"]

_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('microshop:signing-key', 0))"


def kid_of(public_key: rsa.RSAPublicKey) -> str:
    """A stable key id: the start of the SHA-256 of the public key (DER)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()[:12]).decode().rstrip("=")


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _load(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise ValueError("the signing key must be an RSA private key of at least 2048 bits")
    return key


class KeyStore:
    """The key that signs, and every key whose tokens are still honoured (the JWKS)."""

    def __init__(self) -> None:
        self.kid = ""
        self._signing_key: rsa.RSAPrivateKey | None = None
        self.public: dict[str, rsa.RSAPublicKey] = {}

    async def load(self, pool: Pool, configured_pem: str = "") -> None:
        """Use `configured_pem`, else the newest stored key, else generate and store one.

        Several instances starting at once agree on one key (transaction advisory lock).
        """
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK)
            if configured_pem:
                key = _load(configured_pem)
                await conn.execute(
                    "INSERT INTO signing_keys (kid, private_pem) VALUES ($1, $2)"
                    " ON CONFLICT (kid) DO NOTHING",
                    kid_of(key.public_key()),
                    _pem(key),
                )
            rows = await conn.fetch(
                "SELECT kid, private_pem FROM signing_keys WHERE retired_at IS NULL"
                " ORDER BY created_at DESC"
            )
            stored = {row["kid"]: row["private_pem"] for row in rows}
            if not stored:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                stored = {kid_of(key.public_key()): _pem(key)}
                await conn.execute(
                    "INSERT INTO signing_keys (kid, private_pem) VALUES ($1, $2)",
                    *next(iter(stored.items())),
                )
        keys = {kid: _load(pem) for kid, pem in stored.items()}
        self.public = {kid: key.public_key() for kid, key in keys.items()}
        self.kid = (
            kid_of(_load(configured_pem).public_key()) if configured_pem else next(iter(keys))
        )
        self._signing_key = keys[self.kid]

    @property
    def signing_key(self) -> rsa.RSAPrivateKey:
        if self._signing_key is None:
            raise RuntimeError("signing keys are not loaded yet")
        return self._signing_key

    async def public_key(self, kid: str) -> Any | None:
        """`KeySource` for this service's own token checks (no HTTP round trip)."""
        return self.public.get(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self.public.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key))
            jwk.update(kid=kid, alg="RS256", use="sig")
            keys.append(jwk)
        return {"keys": keys}
