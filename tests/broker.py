"""The broker as tests see it: the queues a vhost holds, and stand-ins for the nodes of a
RabbitMQ cluster (local ports relaying to the one real broker, each of which can go away)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

from tests.conftest import closed_port_url, rabbitmqctl

__all__ = ["Declared", "Node", "closed_node_url", "declared_queues", "nodes"]


@dataclasses.dataclass(frozen=True, slots=True)
class Declared:
    """A queue as the broker holds it: its type and the arguments it was declared with."""

    type: str
    arguments: dict[str, Any]


def declared_queues(vhost: str, prefix: str) -> dict[str, Declared]:
    """The queues of `vhost` whose names start with `prefix`, by name (`rabbitmqctl`)."""
    listed = json.loads(
        rabbitmqctl("list_queues", "-p", vhost, "name", "type", "arguments", "--formatter", "json")
    )
    return {
        queue["name"]: Declared(queue["type"], {k: v for k, _, v in queue["arguments"]})
        for queue in listed
        if queue["name"].startswith(prefix)
    }


def _with_address(amqp_url: str, host: str, port: int) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    auth = parts.netloc.rpartition("@")[0]
    netloc = f"{auth}@{host}:{port}" if auth else f"{host}:{port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def closed_node_url(amqp_url: str) -> str:
    """`amqp_url` (credentials, vhost) at a local port nothing listens on: a node that is down."""
    port = urllib.parse.urlsplit(closed_port_url()).port
    assert port is not None
    return _with_address(amqp_url, "127.0.0.1", port)


class Node:
    """A node of the cluster as a client sees it: a local port relaying every connection to
    the real broker, until `down()` closes the port and every connection through it."""

    def __init__(self, amqp_url: str) -> None:
        self.broker = urllib.parse.urlsplit(amqp_url)
        self.amqp_url = amqp_url
        self.accepted = 0
        self._clients: set[asyncio.StreamWriter] = set()
        self._links: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    @property
    def connections(self) -> int:
        """Client connections open through this node now."""
        return sum(not client.is_closing() for client in self._clients)

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = _with_address(self.amqp_url, "127.0.0.1", port)

    async def down(self) -> None:
        """The node goes away: nothing connects any more, and open connections break."""
        assert self._server is not None
        self._server.close()
        for link in list(self._links):
            link.close()
        await self._server.wait_closed()

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        self.accepted += 1
        broker, to_broker = await asyncio.open_connection(
            self.broker.hostname, self.broker.port or 5672
        )
        self._clients.add(to_client)
        self._links |= {to_client, to_broker}
        try:
            await asyncio.gather(_pipe(client, to_broker), _pipe(broker, to_client))
        finally:
            self._clients.discard(to_client)
            self._links -= {to_client, to_broker}


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        sink.close()


@contextlib.asynccontextmanager
async def nodes(amqp_url: str, count: int) -> AsyncIterator[list[Node]]:
    """`count` nodes in front of the broker of `amqp_url`, up while the block runs."""
    started = [Node(amqp_url) for _ in range(count)]
    for node in started:
        await node.up()
    try:
        yield started
    finally:
        for node in started:
            with contextlib.suppress(Exception):
                await node.down()
