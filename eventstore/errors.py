"""The event store's error hierarchy: every failure a caller may act on has its own type."""

from __future__ import annotations

__all__ = [
    "AppendOnly",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStoreError",
    "KeyUnavailable",
    "PersonalDataError",
    "RebuildInProgress",
    "SealBroken",
    "SubjectForgotten",
    "UnknownEventType",
    "UpcastError",
]


class EventStoreError(Exception):
    """Base class of every error the event store raises on purpose."""


class ConcurrencyError(EventStoreError):
    """The stream is not at the version the writer expected: someone else appended first.

    The writer should reload the stream, decide again and retry (HTTP 409 at the edge).
    """

    def __init__(self, stream_id: str, expected: int | None, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the writer expected {expected}"
        )


class DuplicateEventError(EventStoreError):
    """An event with this `event_id` is already stored (a retried write that already landed)."""

    def __init__(self, event_ids: list[str]) -> None:
        self.event_ids = event_ids
        super().__init__(f"event id already stored: {', '.join(event_ids)}")


class UnknownEventType(EventStoreError):
    """An event class or name that was never registered."""


class RebuildInProgress(EventStoreError):
    """Another process is rebuilding the same projection: two would share a shadow table."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a rebuild of {name!r} is already running (another process)")


class FoldFailed(EventStoreError):
    """A projection's own code raised on events of the log (a rebuild or verify stops:
    what was done stays resumable, nothing is swapped in)."""

    def __init__(self, name: str, where: str, error: Exception) -> None:
        self.name, self.where, self.error = name, where, error
        super().__init__(f"{name} cannot fold {where}: {type(error).__name__}: {error}")

    def __reduce__(self) -> tuple[type[FoldFailed], tuple[str, str, Exception]]:
        return FoldFailed, (self.name, self.where, self.error)  # from a forked rebuild worker


class UpcastError(EventStoreError):
    """A stored event cannot be brought to the current schema version of its type."""


class PersonalDataError(EventStoreError):
    """Personal data cannot be sealed or opened as asked."""


class SubjectForgotten(PersonalDataError):
    """The person was forgotten: their key is destroyed, and no new personal data of theirs
    may be stored."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        super().__init__(f"{subject} has been forgotten: their personal data cannot be stored")


class KeyUnavailable(PersonalDataError):
    """No key-encryption key is configured, or not the one that wrapped a data key: a
    deployment mistake, never read as "forgotten"."""


class SealBroken(PersonalDataError):
    """A sealed value or wrapped key does not open: a wrong key, or changed bytes."""


class AppendOnly(EventStoreError):
    """Stored events cannot be changed this way: only the owner of the events table may,
    through `maintenance.editing_events`."""
