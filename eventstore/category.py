"""Stream names as a value: a `Category` names its streams `{category}-{id}` and reads them back.

Every stream id is `{category}-{id}` (`order-0b6f…`, `cart-42`): the category is the part
before the first dash and decides routing keys (`order.OrderPlaced`), projection
subscriptions and wake-ups. Each service declares its categories once and never spells a
stream id by hand, so `stream`, `id_of` and `owns` are the only places that know the format.
"""

from __future__ import annotations

import dataclasses
import re

from .events import RecordedEvent

__all__ = ["Category"]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class Category:
    """The streams of one kind of thing: `Category("order").stream(42) == "order-42"`."""

    name: str
    _prefix: str = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"a category is lowercase letters, digits and _, not {self.name!r}")
        object.__setattr__(self, "_prefix", self.name + "-")

    def stream(self, id_: object) -> str:
        """The id of the stream of `id_` in this category."""
        text = str(id_)
        if not text:
            raise ValueError("a stream needs a non-empty id")
        return f"{self.name}-{text}"

    def id_of(self, stream_id: str) -> str:
        """The id part of one of this category's stream ids (ValueError for another's)."""
        if not self.owns(stream_id):
            raise ValueError(f"{stream_id!r} is not a {self.name} stream")
        return stream_id[len(self._prefix) :]

    def owns(self, item: str | RecordedEvent) -> bool:
        """Whether a stream id, or the stream of a recorded event, is in this category
        (its name holds no dash, so the prefix `{name}-` says it; folds call this for
        every event)."""
        stream_id = item.stream_id if isinstance(item, RecordedEvent) else item
        prefix = self._prefix
        return len(stream_id) > len(prefix) and stream_id.startswith(prefix)

    def __str__(self) -> str:
        return self.name
