"""A person's own data, as JSON (the right of access and to data portability).

The account (its row), the events of the account's stream with their personal fields
opened (the email comes out of the sealed `UserRegistered`), the cart and the orders. The
cart and the orders are asked of cart- and order-service with the caller's own token,
like any client would, so each service answers for that person only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from eventstore import PostgresEventStore
from eventstore.vault import PersonalDataVault
from microshop.client import ServiceClient, ServiceFailed
from microshop.errors import Unauthorized

from .events import USER_STREAMS

__all__ = ["Upstream", "export"]


class Upstream:
    """Asks another service's public API as the caller (their `Authorization` header)."""

    def __init__(self, clients: dict[str, ServiceClient], authorization: str) -> None:
        self._clients = clients
        self._authorization = authorization

    async def get(self, service: str, path: str) -> Any:
        client = self._clients[service]
        reply = await client.get(path, headers={"Authorization": self._authorization})
        if reply.status == 401:  # the token expired, or the account is gone, meanwhile
            raise Unauthorized(f"{service}-service refused the token")
        if reply.status != 200 or not isinstance(reply.body, dict):
            raise ServiceFailed(service, f"{service}-service answered {reply.status} for {path}")
        return reply.body


async def export(
    store: PostgresEventStore, vault: PersonalDataVault, upstream: Upstream, user_id: str
) -> dict[str, Any] | None:
    """Everything kept about account `user_id` (None when there is no such account)."""
    row = await store.pool.fetchrow(
        "SELECT id, email, roles, created_at FROM users WHERE id = $1", uuid.UUID(user_id)
    )
    if row is None:
        return None
    events = []
    for event in await store.read_stream(USER_STREAMS.stream(user_id)):
        events.append(
            {
                "type": event.event_type,
                "stream": event.stream_id,
                "stream_version": event.stream_version,
                "recorded_at": event.recorded_at,
                "data": msgspec.to_builtins(await vault.reveal(event.data)),
            }
        )
    cart = await upstream.get("cart", "/api/cart")
    orders = await upstream.get("order", "/api/orders")
    return {
        "exported_at": datetime.now(UTC),
        "account": {
            "id": str(row["id"]),
            "email": row["email"],
            "roles": list(row["roles"]),
            "created_at": row["created_at"],
        },
        "events": events,
        "cart": cart,
        "orders": orders.get("items", []),
    }
