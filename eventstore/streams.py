"""The `streams` projection: one row per stream, the catalogue of the event store."""

from __future__ import annotations

from .events import RecordedEvent
from .projection import Projection, Row, register_projection

__all__ = ["StreamsProjection"]


class StreamsProjection(Projection):
    """Each stream's category, version, last event type, event count and time span."""

    name = "streams"
    table = "streams"
    key = "stream_id"
    categories = frozenset()  # envelope fields only: no event data is decoded
    reads_metadata = False
    keyed_by_stream = True
    columns = (
        "stream_id",
        "category",
        "version",
        "last_event_type",
        "event_count",
        "created_at",
        "updated_at",
    )

    def key_of(self, event: RecordedEvent) -> str:
        return event.stream_id

    def apply(self, row: Row | None, event: RecordedEvent) -> Row:
        if row is None:
            return {
                "stream_id": event.stream_id,
                "category": event.category,
                "version": event.stream_version,
                "last_event_type": event.event_type,
                "event_count": 1,
                "created_at": event.recorded_at,
                "updated_at": event.recorded_at,
            }
        row["version"] = max(row["version"], event.stream_version)
        row["last_event_type"] = event.event_type
        row["event_count"] += 1
        row["updated_at"] = event.recorded_at
        return row


register_projection(StreamsProjection())
