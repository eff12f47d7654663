"""Salted, slow password hashes (stdlib scrypt), computed off the event loop."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

__all__ = ["hash_password", "verify_password"]

_N, _R, _P, _LEN = 2**14, 8, 1, 32
_SCHEME = "scrypt"
# Verifying against this when the account does not exist keeps the timing the same.
_DUMMY = f"{_SCHEME}${_N}${_R}${_P}$" + base64.b64encode(b"\0" * 16).decode() + "$" + "A" * 44


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_LEN, maxmem=256 * 1024 * 1024
    )


def _hash(password: str) -> str:
    salt = os.urandom(16)
    digest = _derive(password, salt, _N, _R, _P)
    return f"{_SCHEME}${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _verify(password: str, stored: str | None) -> bool:
    scheme, n, r, p, salt, digest = (stored or _DUMMY).split("$")
    if scheme != _SCHEME:
        return False
    candidate = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(candidate, base64.b64decode(digest)) and stored is not None


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hash, password)


async def verify_password(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`; None (no such account) costs the same and fails."""
    return await asyncio.to_thread(_verify, password, stored)
