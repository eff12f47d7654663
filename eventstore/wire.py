"""The AMQP form of a stored event: one JSON envelope per message, AMQP properties for routing.

Routing key `{category}.{EventType}`, `message_id` = event id, persistent. The body carries
the whole envelope so that a consumer needs nothing but the message to rebuild the
`RecordedEvent` (and upcast it with its own registry).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from pamqp.commands import Basic

from .events import METADATA_DECODER, EventRegistry, Metadata, RecordedEvent, category_of

__all__ = ["WireEvent", "decode_message", "encode_row", "routing_key"]


class WireEvent(msgspec.Struct, frozen=True, gc=False):
    event_id: uuid.UUID
    event_type: str
    schema_version: int
    stream_id: str
    stream_version: int
    global_position: int
    tx_id: int
    recorded_at: datetime
    data: msgspec.Raw
    metadata: msgspec.Raw


_encode = msgspec.json.Encoder().encode
_decode_wire = msgspec.json.Decoder(WireEvent).decode


def routing_key(stream_id: str, event_type: str) -> str:
    return f"{category_of(stream_id)}.{event_type}"


def encode_row(row: Any) -> tuple[str, bytes, Basic.Properties]:
    """`(routing key, body, properties)` of a global-log row (`store.COLUMNS` order, and
    perhaps more columns after them)."""
    position, tx_id, stream_id, version, event_id, event_type, schema, data, meta, at, *_ = row
    body = _encode(
        WireEvent(
            event_id,
            event_type,
            schema,
            stream_id,
            version,
            position,
            tx_id,
            at,
            msgspec.Raw(data.encode()),
            msgspec.Raw(meta.encode()),
        )
    )
    metadata = METADATA_DECODER.decode(meta)
    headers: dict[str, Any] = {"x-stream-id": stream_id}
    if metadata.traceparent:
        headers["traceparent"] = metadata.traceparent
    properties = Basic.Properties(
        content_type="application/json",
        delivery_mode=2,
        message_id=str(event_id),
        message_type=event_type,
        correlation_id=metadata.correlation_id,
        timestamp=at,
        headers=headers,
    )
    return routing_key(stream_id, event_type), body, properties


def decode_message(body: bytes, registry: EventRegistry) -> RecordedEvent:
    """The `RecordedEvent` a message carries, its data typed (and upcast) by `registry`.

    Raises `msgspec.DecodeError` / `msgspec.ValidationError` / `UpcastError` on a body that is
    not a valid envelope: such a message is poison, not a transient failure.
    """
    wire = _decode_wire(body)
    metadata: Metadata = METADATA_DECODER.decode(bytes(wire.metadata))
    data = registry.decode(wire.event_type, wire.schema_version, bytes(wire.data))
    return RecordedEvent(
        wire.global_position,
        wire.tx_id,
        wire.stream_id,
        wire.stream_version,
        wire.event_id,
        wire.event_type,
        wire.schema_version,
        data,
        metadata,
        wire.recorded_at,
    )
