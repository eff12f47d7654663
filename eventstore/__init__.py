"""MicroShop's event store: one Postgres table of event streams, a relay to RabbitMQ,
consumers with retries and an inbox, and rebuildable projections.

`EventStore` is the port (`port.py`); `PostgresEventStore` and `InMemoryEventStore` keep
it. `execute` / `Aggregate` (`command.py`) is the one write path; `Category` names streams.
"""

from .category import Category
from .command import Aggregate, Executed, Loaded, Retry, Snapshot, execute, load
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
    FoldFailed,
    RebuildInProgress,
    UnknownEventType,
    UpcastError,
)
from .events import (
    START,
    Dropped,
    EventRegistry,
    Metadata,
    Position,
    RecordedEvent,
    Undecodable,
    registry,
)
from .memory import InMemoryEventStore
from .pg import create_pool
from .port import ANY, NO_STREAM, AppendResult, EventStore
from .projection import (
    Projection,
    ProjectionRunner,
    Row,
    Watched,
    Written,
    projections,
    register_projection,
    replay,
)
from .rebuilding import rebuild
from .relay import Relay
from .store import PostgresEventStore
from .wakeup import LogWatcher

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "Aggregate",
    "AlreadyHandled",
    "AppendResult",
    "Category",
    "ConcurrencyError",
    "Consumer",
    "Dropped",
    "DuplicateEventError",
    "EventRegistry",
    "EventStore",
    "EventStoreError",
    "Executed",
    "FoldFailed",
    "HandlerContext",
    "InMemoryEventStore",
    "Loaded",
    "LogWatcher",
    "Metadata",
    "Position",
    "PostgresEventStore",
    "Projection",
    "ProjectionRunner",
    "RebuildInProgress",
    "RecordedEvent",
    "Reject",
    "Relay",
    "Retry",
    "RetryLater",
    "RetryPolicy",
    "Row",
    "Snapshot",
    "Undecodable",
    "UnknownEventType",
    "UpcastError",
    "Watched",
    "Written",
    "create_pool",
    "execute",
    "load",
    "projections",
    "rebuild",
    "register_projection",
    "registry",
    "replay",
]
