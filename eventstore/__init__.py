"""MicroShop's event store: one Postgres table of event streams, a relay to RabbitMQ,
consumers with retries and an inbox, and rebuildable projections."""

from .consumer import (
    AlreadyHandled,
    Consumer,
    HandlerContext,
    Reject,
    RetryLater,
    RetryPolicy,
)
from .errors import (
    ConcurrencyError,
    DuplicateEventError,
    EventStoreError,
    RebuildInProgress,
    UnknownEventType,
    UpcastError,
)
from .events import START, EventRegistry, Metadata, Position, RecordedEvent, registry
from .pg import create_pool
from .projection import (
    Projection,
    ProjectionRunner,
    Row,
    projections,
    rebuild,
    register_projection,
    replay,
)
from .relay import Relay
from .store import ANY, NO_STREAM, AppendResult, EventStore
from .wakeup import LogWatcher

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "AlreadyHandled",
    "AppendResult",
    "ConcurrencyError",
    "Consumer",
    "DuplicateEventError",
    "EventRegistry",
    "EventStore",
    "EventStoreError",
    "HandlerContext",
    "LogWatcher",
    "Metadata",
    "Position",
    "Projection",
    "ProjectionRunner",
    "RebuildInProgress",
    "RecordedEvent",
    "Reject",
    "Relay",
    "RetryLater",
    "RetryPolicy",
    "Row",
    "UnknownEventType",
    "UpcastError",
    "create_pool",
    "projections",
    "rebuild",
    "register_projection",
    "registry",
    "replay",
]
