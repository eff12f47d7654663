"""Where a MicroShop process gets its key-encryption key, and the vault built on it.

`PII_KEY_ENCRYPTION_KEY` gives the key-encryption keys (base64 of 32 bytes each, the
current one first). Left empty — development only — every process of a checkout uses
the same generated key in `var/pii-kek` (made once, readable by its owner only, never
committed): `microshop up`, the CLI and a service started by hand agree without setup,
and the key never enters the database, so a dump of it reads nobody's personal data.
"""

from __future__ import annotations

import os
from pathlib import Path

from eventstore.errors import KeyUnavailable
from eventstore.pg import Pool
from eventstore.sealing import KeyEncryptionKeys
from eventstore.vault import PersonalDataVault

from .config import Config

__all__ = ["DEV_KEY_FILE", "development_key", "key_encryption_keys", "vault_for"]

DEV_KEY_FILE = Path(__file__).resolve().parent.parent / "var" / "pii-kek"


def development_key(path: Path = DEV_KEY_FILE) -> str:
    """The development key-encryption key in `path`, made there the first time (several
    processes starting at once agree: the file appears whole, once)."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".{path.name}.{os.getpid()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, (KeyEncryptionKeys.generate() + "\n").encode())
            finally:
                os.close(fd)
            try:
                os.link(draft, path)  # atomic, and fails if another process was first
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return path.read_text().strip()
    except OSError as exc:
        raise KeyUnavailable(
            f"PII_KEY_ENCRYPTION_KEY is not set and the development key {path} cannot be"
            f" made or read: {exc.strerror or exc}"
        ) from None


def key_encryption_keys(config: Config) -> KeyEncryptionKeys:
    """The configured key-encryption keys, or the development key of this checkout."""
    configured = config.pii_key_encryption_key
    try:
        return KeyEncryptionKeys.parse(configured or development_key())
    except ValueError as exc:
        raise KeyUnavailable(f"the key-encryption key is unusable: {exc}") from None


def vault_for(config: Config, pool: Pool) -> PersonalDataVault:
    """The personal-data vault on `pool`; it reads the key-encryption key when first used."""
    return PersonalDataVault(pool, lambda: key_encryption_keys(config))
