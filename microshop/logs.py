"""JSON log lines, and their asynchronous shipping to log-service over RabbitMQ.

Every line is one JSON object (service, level, message, request and correlation ids, the
event being handled, extras) written to stderr. A service also ships its lines to the
`{ns}.logs` exchange: `LogBuffer` keeps formatted lines in a bounded buffer (a full buffer
drops new lines and counts them, it never blocks or fails the caller) and `LogShipper` sends
them in batches with publisher confirms, putting a batch back when the broker is gone. The
durable `{ns}.logs` queue (quorum by default, like every queue here) keeps what is shipped
while log-service is down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web
from aiormq.abc import AbstractChannel, AbstractConnection
from pamqp.commands import Basic

from eventstore.amqp import BROKER_ERRORS, QUORUM, Queues, connect_amqp

from . import context
from .appkeys import CONFIG, METRICS, SERVICE
from .config import Config
from .tasks import cancel_and_wait

__all__ = [
    "LOG_QUEUE_ARGUMENTS",
    "JsonFormatter",
    "LogBuffer",
    "LogShipper",
    "declare_log_topology",
    "log_shipping_context",
    "setup_logging",
]

_encode = msgspec.json.Encoder(decimal_format="string").encode

# Attributes every LogRecord has; anything else passed in `extra=` goes into the line.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# Python's level names, as the lines and `GET /api/logs?level=` spell them.
LEVELS = {"WARNING": "WARN", "CRITICAL": "FATAL"}

# The logs queue has a size cap, so an absent log-service cannot fill the broker's disk:
# past 256 MiB (or 100,000 batches) the oldest batches go first (drop-head, which quorum
# queues support too; reject-publish would stall every shipper instead and keep the oldest).
LOG_QUEUE_ARGUMENTS: dict[str, Any] = {
    "x-max-length": 100_000,
    "x-max-length-bytes": 256 * 1024 * 1024,
    "x-overflow": "drop-head",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, the shape log-service stores."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "service": self.service,
            "level": LEVELS.get(record.levelname, record.levelname),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or context.request_id.get(),
            "correlation_id": getattr(record, "correlation_id", None)
            or context.correlation_id.get(),
        }
        if (event_id := getattr(record, "event_id", None) or context.event_id.get()) is not None:
            line["event_id"] = event_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _safe(line)


def _safe(line: dict[str, Any]) -> str:
    try:
        return _encode(line).decode()
    except (TypeError, msgspec.EncodeError):
        return _encode(
            {
                k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                for k, v in line.items()
            }
        ).decode()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route every logger to stderr as JSON lines tagged with `service`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class LogBuffer(logging.Handler):
    """Formats records into a bounded in-memory buffer (`capacity` lines, `max_bytes` of
    text); when full, new lines are dropped and counted (`dropped`), so logging never
    waits on the network and a burst of tracebacks cannot take the process's memory."""

    def __init__(
        self,
        service: str,
        *,
        capacity: int = 10_000,
        max_bytes: int = 16 * 2**20,
        level: int | str = 0,
    ) -> None:
        super().__init__(level)
        self.setFormatter(JsonFormatter(service))
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.lines: collections.deque[str] = collections.deque()
        self.size = 0  # characters buffered
        self.dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived = asyncio.Event()

    def _fits(self, line: str) -> bool:
        return len(self.lines) < self.capacity and self.size + len(line) <= self.max_bytes

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("aiormq"):  # the shipper's own transport: no feedback loop
            return
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if not self._fits(line):
            self.dropped += 1
            return
        self.lines.append(line)
        self.size += len(line)
        loop = self._loop
        if loop is not None and not self._arrived.is_set():
            if _running_loop() is loop:
                self._arrived.set()
            else:  # a record from another thread
                loop.call_soon_threadsafe(self._arrived.set)

    async def wait(self) -> None:
        """Return once there are lines to ship."""
        self._loop = asyncio.get_running_loop()
        while not self.lines:
            self._arrived.clear()
            await self._arrived.wait()

    def take(self, limit: int) -> list[str]:
        """Up to `limit` of the oldest lines, removed from the buffer."""
        lines = self.lines
        batch = [lines.popleft() for _ in range(min(limit, len(lines)))]
        self.size -= sum(map(len, batch))
        return batch

    def put_back(self, batch: list[str]) -> None:
        """Return an unshipped batch to the front, dropping (and counting) what no longer fits."""
        keep: list[str] = []
        for line in batch:
            if not self._fits(line):
                break
            keep.append(line)
            self.size += len(line)
        self.dropped += len(batch) - len(keep)
        self.lines.extendleft(reversed(keep))


async def declare_log_topology(
    channel: AbstractChannel, namespace: str, queues: Queues
) -> tuple[str, str]:
    """Declare topic exchange `{ns}.logs` and its durable queue `{ns}.logs` (bound to `#`)
    of the type `queues` declares."""
    name = f"{namespace}.logs"
    await channel.exchange_declare(name, exchange_type="topic", durable=True)
    await queues.declare(channel, name, LOG_QUEUE_ARGUMENTS)
    await channel.queue_bind(name, name, routing_key="#")
    return name, name


class LogShipper:
    """Sends a `LogBuffer`'s lines to `{ns}.logs` in NDJSON batches, with confirms.

    Connects only when there is something to send; a lost broker puts the batch back and
    reconnects with backoff, so lines wait in the (bounded) buffer instead of being lost.
    """

    def __init__(
        self,
        buffer: LogBuffer,
        *,
        amqp_url: str,
        namespace: str,
        service: str,
        batch_size: int = 500,
        interval: float = 0.2,
        queue_type: str = QUORUM,
    ) -> None:
        self.buffer = buffer
        self.amqp_url = amqp_url
        self.namespace = namespace
        self.service = service
        self.batch_size = batch_size
        self.interval = interval
        self.shipped = 0
        self.failures = 0
        self.queues = Queues(queue_type)
        self._channel: AbstractChannel | None = None

    async def run(self) -> None:
        """Ship until cancelled."""
        backoff = 0.5
        while True:
            await self._lines_waiting()
            try:
                async with self._connected():
                    backoff = 0.5
                    while True:
                        await self._lines_waiting()
                        await self._ship_one_batch()
            except Exception as exc:  # a broker error, or a bug: never stop shipping
                self.failures += 1
                # stderr only: a line about the broker being gone cannot travel through it
                print(
                    f"log shipping paused ({type(exc).__name__}: {exc}); retrying in "
                    f"{backoff:.1f}s",
                    file=sys.stderr,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def flush(self, timeout: float = 2.0) -> None:
        """Best effort at shutdown: ship what is buffered within `timeout` seconds."""
        with contextlib.suppress(*BROKER_ERRORS):
            async with asyncio.timeout(timeout), self._connected():
                while self.buffer.lines:
                    await self._ship_one_batch()

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[None]:
        connection: AbstractConnection = await connect_amqp(
            self.amqp_url, f"{self.namespace}.logs:{self.service}"
        )
        try:
            channel = await connection.channel(publisher_confirms=True)
            self._exchange, _ = await declare_log_topology(channel, self.namespace, self.queues)
            self._channel = channel
            yield
        finally:
            self._channel = None
            with contextlib.suppress(Exception):
                await connection.close()

    async def _lines_waiting(self) -> None:
        await self.buffer.wait()
        if len(self.buffer.lines) < self.batch_size:
            await asyncio.sleep(self.interval)  # let a batch gather

    async def _ship_one_batch(self) -> None:
        assert self._channel is not None
        batch = self.buffer.take(self.batch_size)
        if not batch:
            return
        try:
            confirmation = await self._channel.basic_publish(
                "\n".join(batch).encode(),
                exchange=self._exchange,
                routing_key=self.service,
                properties=Basic.Properties(
                    content_type="application/x-ndjson", delivery_mode=2, app_id=self.service
                ),
            )
            if not isinstance(confirmation, Basic.Ack):
                raise ConnectionError(f"the broker refused a log batch: {confirmation!r}")
        except BaseException:
            self.buffer.put_back(batch)
            raise
        self.shipped += len(batch)


# -- one shipper per process -------------------------------------------------------------


class _Shipping:
    """The process's buffer + shipper, shared by every app in it (tests run several)."""

    def __init__(self, buffer: LogBuffer, shipper: LogShipper, task: asyncio.Task[None]) -> None:
        self.buffer, self.shipper, self.task = buffer, shipper, task
        self.users = 0


_PROCESS: dict[str, _Shipping] = {}  # "shipping": the running one


def _start_shipping(service: str, config: Config) -> _Shipping:
    shipping = _PROCESS.get("shipping")
    if shipping is None or shipping.task.done():
        buffer = LogBuffer(service, capacity=config.log_buffer_lines, level=config.log_level)
        shipper = LogShipper(
            buffer,
            amqp_url=config.amqp_url,
            namespace=config.namespace,
            service=service,
            queue_type=config.amqp_queue_type,
        )
        task = asyncio.create_task(shipper.run(), name="log-shipper")
        logging.getLogger().addHandler(buffer)
        shipping = _PROCESS["shipping"] = _Shipping(buffer, shipper, task)
    shipping.users += 1
    return shipping


async def _stop_shipping(shipping: _Shipping) -> None:
    shipping.users -= 1
    if shipping.users > 0:
        return
    if _PROCESS.get("shipping") is shipping:
        del _PROCESS["shipping"]
    logging.getLogger().removeHandler(shipping.buffer)
    await cancel_and_wait(shipping.task)
    await shipping.shipper.flush()


async def log_shipping_context(app: web.Application) -> AsyncIterator[None]:
    """Ship the service's log lines to log-service while the app runs (LOG_SHIPPING)."""
    config = app[CONFIG]
    if not config.log_shipping:
        yield
        return
    shipping = _start_shipping(app[SERVICE], config)
    metrics = app[METRICS]
    shipped = metrics.counter("log_lines_shipped_total", "Log lines sent to log-service.")
    dropped = metrics.counter(
        "log_lines_dropped_total", "Log lines lost because the shipping buffer was full."
    )
    buffered = metrics.gauge("log_lines_buffered", "Log lines waiting to be shipped.")

    async def collect() -> None:
        shipped.set({}, shipping.shipper.shipped)
        dropped.set({}, shipping.buffer.dropped)
        buffered.set({}, len(shipping.buffer.lines))

    metrics.collectors.append(collect)
    try:
        yield
    finally:
        await _stop_shipping(shipping)
