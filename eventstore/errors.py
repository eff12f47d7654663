"""The event store's error hierarchy: every failure a caller may act on has its own type."""

from __future__ import annotations

import pickle

__all__ = [
    "AppendOnly",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStoreError",
    "KeyUnavailable",
    "PersonalDataError",
    "RebuildInProgress",
    "RemoteError",
    "SealBroken",
    "SubjectForgotten",
    "UnknownEventType",
    "UpcastError",
    "kind_of",
    "portable",
]


class EventStoreError(Exception):
    """Base class of every error the event store raises on purpose."""


class ConcurrencyError(EventStoreError):
    """The stream is not at the version the writer expected: someone else appended first.

    The writer should reload the stream, decide again and retry (HTTP 409 at the edge).
    """

    def __init__(self, stream_id: str, expected: int | None, actual: int | None) -> None:
        """`actual`: the stream's version, None where it could not be asked (the lost race
        aborted the caller's transaction)."""
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        at = "past that" if actual is None else f"at version {actual}"
        super().__init__(f"stream {stream_id!r} is {at}, the writer expected {expected}")

    def __reduce__(self) -> tuple[type[ConcurrencyError], tuple[str, int | None, int | None]]:
        return ConcurrencyError, (self.stream_id, self.expected, self.actual)


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

    def __init__(self, name: str, where: str, error: BaseException) -> None:
        self.name, self.where, self.error = name, where, error
        super().__init__(f"{name} cannot fold {where}: {kind_of(error)}: {error}")

    def __reduce__(self) -> tuple[type[FoldFailed], tuple[str, str, BaseException]]:
        return FoldFailed, (self.name, self.where, portable(self.error))  # from a worker


class RemoteError(Exception):
    """An error raised in another process that could not travel as itself (its class
    cannot be rebuilt from its pickle): its type's name and its text."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text
        super().__init__(type_name, text)

    def __str__(self) -> str:
        return self.text


def kind_of(error: BaseException) -> str:
    """The name of `error`'s type (the original one for a `RemoteError`)."""
    return error.type_name if isinstance(error, RemoteError) else type(error).__name__


def portable(error: BaseException) -> BaseException:
    """`error` if it survives a pickle round trip (as it must, to cross to another
    process), else a `RemoteError` with its type's name and text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RemoteError(type(error).__name__, str(error))
    return error


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
