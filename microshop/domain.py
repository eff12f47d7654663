"""Refusals of the domain: a stable `code`, a human `message`, `details`, and a `kind`.

Every service's pure `domain/` raises subclasses of `DomainError` to refuse a decision;
the kernel's error middleware turns the `kind` into the HTTP status (not found 404,
conflict 409, invalid 422, unavailable 503), so no handler raises an HTTP exception and
every service answers a refusal the same way. Pure: imports nothing but the standard
library, so domain code stays free of web and database packages.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ConflictError",
    "DomainError",
    "InvalidError",
    "InvalidValue",
    "Kind",
    "NotFoundError",
    "UnavailableError",
]


class Kind(enum.Enum):
    """What kind of refusal: the caller's next step differs for each."""

    NOT_FOUND = "not_found"
    """No such thing (or none the caller may see)."""
    CONFLICT = "conflict"
    """The thing's state does not allow it now (a final order, a taken SKU)."""
    INVALID = "invalid"
    """The request breaks a rule whatever the state (a quantity of 0, three decimals)."""
    UNAVAILABLE = "unavailable"
    """Something it depends on cannot answer now: try again later."""


class DomainError(Exception):
    """A decision the domain refuses. Subclasses set `kind` and `code`."""

    kind: ClassVar[Kind] = Kind.CONFLICT
    code: ClassVar[str] = "rejected"

    def __init__(
        self, message: str, *, code: str | None = None, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may name its case
        self.details: dict[str, Any] = dict(details or {})


class NotFoundError(DomainError):
    kind, code = Kind.NOT_FOUND, "not_found"


class ConflictError(DomainError):
    kind, code = Kind.CONFLICT, "conflict"


class InvalidError(DomainError):
    kind, code = Kind.INVALID, "validation_error"


class UnavailableError(DomainError):
    kind, code = Kind.UNAVAILABLE, "unavailable"


class InvalidValue(InvalidError):
    """One field's value breaks a rule: answered like a schema error on that field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details={field: [message]})
        self.field = field
        self.reason = message
