"""Personal data on event classes: which fields hold it, and whose it is.

An event class declares its personal data where it declares its fields: `PERSONAL`
marks a field that identifies a person (an email, a name, an address), `SUBJECT` the
field naming the person it belongs to (a user id). The event store seals every personal
field with that person's key before the event is stored (`vault.PersonalDataVault`), so
destroying the key forgets the data in every stored copy while the log stays append-only.

```python
@dataclasses.dataclass(frozen=True, slots=True)
class UserRegistered:
    user_id: Annotated[str, SUBJECT]
    email: Annotated[str, PERSONAL]
```

Personal fields hold text (`str`, or `str | None`); they keep their name across schema
versions, because a sealed value is found by it. This module is pure: no crypto, no I/O.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

__all__ = [
    "PERSONAL",
    "REDACTED",
    "SEALED_PREFIX",
    "SUBJECT",
    "PersonalFields",
    "is_sealed",
    "personal_fields",
]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


PERSONAL = _Marker("PERSONAL")
"""`Annotated[str, PERSONAL]`: the field holds personal data (sealed when stored)."""
SUBJECT = _Marker("SUBJECT")
"""`Annotated[str, SUBJECT]`: the field names the person the personal fields belong to."""

SEALED_PREFIX = "pii:1:"
"""How a sealed value starts: `pii:1:` + base64url(nonce | AES-GCM ciphertext and tag)."""

REDACTED = "[redacted]"
"""What a personal field reads as once it cannot be read: its person's key is destroyed
(forgotten), or it was stored in plain text before sealing existed."""


def is_sealed(value: object) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


@dataclasses.dataclass(frozen=True, slots=True)
class PersonalFields:
    """The subject field and the personal fields of an event class."""

    subject: str
    fields: tuple[str, ...]

    def subject_of(self, event: object) -> str:
        return str(getattr(event, self.subject))

    def plain_in(self, data: dict[str, Any]) -> list[str]:
        """Names of the personal fields stored JSON `data` holds in plain text."""
        return [
            name
            for name in self.fields
            if isinstance(data.get(name), str) and not is_sealed(data[name])
        ]


_DECLARED: dict[type[Any], PersonalFields | None] = {}


def personal_fields(cls: type[Any]) -> PersonalFields | None:
    """What `cls` declares (None: no personal data). A class with personal fields must name
    exactly one subject field, or its data could not be sealed (TypeError)."""
    try:
        return _DECLARED[cls]
    except KeyError:
        found = _DECLARED[cls] = _declared(cls)
        return found


def _marks(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint)[1:] if typing.get_origin(hint) is typing.Annotated else ()


def _declared(cls: type[Any]) -> PersonalFields | None:
    if not dataclasses.is_dataclass(cls):
        return None
    hints = typing.get_type_hints(cls, include_extras=True)
    declared = [f.name for f in dataclasses.fields(cls)]
    fields = tuple(name for name in declared if PERSONAL in _marks(hints.get(name)))
    subjects = [name for name in declared if SUBJECT in _marks(hints.get(name))]
    if not fields:
        return None
    if len(subjects) != 1:
        raise TypeError(
            f"{cls.__qualname__} has personal fields ({', '.join(fields)}) and must mark"
            f" exactly one field SUBJECT, not {len(subjects)}"
        )
    return PersonalFields(subjects[0], fields)
