"""Personal data without I/O: the declarations on event classes, the cryptography of sealed
values and wrapped keys (wrong keys, changed bytes, rotation), and reading old events."""

from __future__ import annotations

import base64
import dataclasses
import stat
from pathlib import Path
from typing import Annotated

import pytest

from eventstore import EventRegistry, InMemoryEventStore
from eventstore.errors import KeyUnavailable, PersonalDataError, SealBroken
from eventstore.personal import PERSONAL, REDACTED, SUBJECT, is_sealed, personal_fields
from eventstore.sealing import (
    KeyEncryptionKeys,
    kek_id,
    new_data_key,
    open_value,
    seal_value,
    unwrap_key,
    wrap_key,
)
from microshop.config import Config, ConfigError
from microshop.personal import development_key
from services.auth.domain import UserRegistered, register, upcast_registered_v1


@dataclasses.dataclass(frozen=True)
class Signed:
    user_id: Annotated[str, SUBJECT]
    name: Annotated[str, PERSONAL]
    phone: Annotated[str | None, PERSONAL]
    plan: str


@dataclasses.dataclass(frozen=True)
class Whose:
    name: Annotated[str, PERSONAL]


def test_the_classes_declare_their_personal_data() -> None:
    assert personal_fields(UserRegistered) is not None
    assert personal_fields(UserRegistered) == personal_fields(UserRegistered)
    fields = personal_fields(Signed)
    assert fields is not None
    assert (fields.subject, fields.fields) == ("user_id", ("name", "phone"))
    assert personal_fields(EventRegistry) is None  # not a dataclass
    assert fields.plain_in({"user_id": "u", "name": "Ada", "phone": None}) == ["name"]


def test_personal_data_without_a_subject_cannot_be_registered() -> None:
    with pytest.raises(TypeError, match="exactly one field SUBJECT"):
        EventRegistry().register(Whose)


def test_a_value_opens_only_with_its_key_and_for_its_subject() -> None:
    key = new_data_key()
    sealed = seal_value(key, "user-1", "ada@example.com")
    assert is_sealed(sealed) and "ada" not in sealed
    assert seal_value(key, "user-1", "ada@example.com") != sealed  # a fresh nonce each time
    assert open_value(key, "user-1", sealed) == "ada@example.com"
    with pytest.raises(SealBroken):
        open_value(new_data_key(), "user-1", sealed)  # the wrong key
    with pytest.raises(SealBroken):
        open_value(key, "user-2", sealed)  # moved into another person's event


@pytest.mark.parametrize("where", [8, 20, -1])
def test_a_changed_byte_is_refused(where: int) -> None:
    key = new_data_key()
    sealed = seal_value(key, "u", "ada@example.com")
    prefix, text = sealed[:6], sealed[6:]
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[where] ^= 0x01
    tampered = prefix + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(SealBroken):
        open_value(key, "u", tampered)


@pytest.mark.parametrize("value", ["pii:1:", "pii:1:AAAA", "pii:1:!!!", "ada@example.com"])
def test_what_is_not_a_sealed_value_is_refused(value: str) -> None:
    with pytest.raises(SealBroken):
        open_value(new_data_key(), "u", value)


def test_a_wrapped_key_opens_only_with_its_kek_for_its_subject() -> None:
    kek, data_key = base64.urlsafe_b64decode(KeyEncryptionKeys.generate()), new_data_key()
    wrapped = wrap_key(kek, "u", data_key)
    assert data_key not in wrapped
    assert unwrap_key(kek, "u", wrapped) == data_key
    with pytest.raises(SealBroken):
        unwrap_key(base64.urlsafe_b64decode(KeyEncryptionKeys.generate()), "u", wrapped)
    with pytest.raises(SealBroken):
        unwrap_key(kek, "v", wrapped)  # swapped into another person's row
    with pytest.raises(SealBroken):
        unwrap_key(kek, "u", wrapped[:-1] + bytes([wrapped[-1] ^ 1]))


def test_rotation_keeps_old_keys_to_unwrap_with() -> None:
    old, new = KeyEncryptionKeys.generate(), KeyEncryptionKeys.generate()
    before = KeyEncryptionKeys.parse(old)
    during = KeyEncryptionKeys.parse(f"{new},{old}")
    after = KeyEncryptionKeys.parse(new)
    data_key = new_data_key()
    wrapped = wrap_key(before.current, "u", data_key)
    assert during.by_id(before.current_id) == before.current  # old keys still unwrap
    opened = unwrap_key(during.by_id(kek_id(before.current)), "u", wrapped)
    rewrapped = wrap_key(during.current, "u", opened)
    assert unwrap_key(after.by_id(during.current_id), "u", rewrapped) == data_key
    with pytest.raises(KeyUnavailable, match="not configured"):
        after.by_id(before.current_id)  # dropped after the rotation
    assert old not in repr(during) and during.current_id in repr(during)


@pytest.mark.parametrize("text", ["", "c2hvcnQ=", "not base64 at all", f"{'A' * 43}=,"])
def test_a_key_that_is_not_32_bytes_of_base64_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="key"):
        KeyEncryptionKeys.parse(text)


def test_config_refuses_a_bad_kek_without_printing_it() -> None:
    with pytest.raises(ConfigError, match="PII_KEY_ENCRYPTION_KEY=<hidden>") as refused:
        Config.from_env({"PII_KEY_ENCRYPTION_KEY": "secret-but-short"})
    assert "secret-but-short" not in str(refused.value)
    good = KeyEncryptionKeys.generate()
    assert Config.from_env({"PII_KEY_ENCRYPTION_KEY": good}).pii_key_encryption_key == good


async def test_a_store_without_a_vault_refuses_personal_data() -> None:
    store = InMemoryEventStore()
    with pytest.raises(PersonalDataError, match="no vault"):
        await store.append("user-1", [register("ada@example.com")], 0)
    assert await store.read_stream("user-1") == []


def test_a_plain_v1_registration_reads_redacted_and_a_sealed_one_as_it_is() -> None:
    plain = {"user_id": "u", "email": "ada@example.com", "roles": ["user"]}
    assert upcast_registered_v1(plain)["email"] == REDACTED
    sealed = {**plain, "email": seal_value(new_data_key(), "u", "ada@example.com")}
    assert upcast_registered_v1(sealed) == sealed


def test_the_development_key_is_made_once_for_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "var" / "pii-kek"
    first = development_key(path)
    assert KeyEncryptionKeys.parse(first).current_id  # a usable key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert development_key(path) == first  # every process of the checkout agrees
    assert [p.name for p in path.parent.iterdir()] == ["pii-kek"]  # no drafts left
    with pytest.raises(KeyUnavailable, match="cannot be made"):
        development_key(path / "below-a-file")  # a place no key can be written to
