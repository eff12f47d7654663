"""marshmallow fields shared by the services' schemas."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import marshmallow
from marshmallow import fields

from .domain import InvalidValue

__all__ = ["Checked"]

T = TypeVar("T")


class Checked(fields.Field[T], Generic[T]):
    """A JSON string passed through a domain rule; the rule's refusal becomes the message.

    A rule refuses with `InvalidValue` (its `reason` is the message: the 422 already files
    it under the field) or a `ValueError`. One set of rules, enforced by the domain, worded
    once.
    """

    refusals: ClassVar[tuple[type[Exception], ...]] = (InvalidValue, ValueError)
    default_error_messages = {"invalid": "Not a valid string."}

    def __init__(self, rule: Callable[[str], T], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rule = rule

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> T:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            return self.rule(value)
        except self.refusals as exc:
            reason = exc.reason if isinstance(exc, InvalidValue) else str(exc)
            raise marshmallow.ValidationError(reason) from None
