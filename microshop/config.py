"""Configuration: one frozen dataclass, read from the environment once and passed in."""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

__all__ = ["SERVICE_PORTS", "Config", "ConfigError", "redacted"]


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot run with."""


# Service name -> (env var of its port, default port). Part of the public contract: fixed.
SERVICE_PORTS: dict[str, tuple[str, int]] = {
    "gateway": ("GATEWAY_PORT", 8000),
    "auth": ("AUTH_PORT", 8001),
    "product": ("PRODUCT_PORT", 8002),
    "cart": ("CART_PORT", 8003),
    "order": ("ORDER_PORT", 8004),
    "payment": ("PAYMENT_PORT", 8005),
    "log": ("LOG_PORT", 8006),
    "order-consumer": ("ORDER_CONSUMER_PORT", 8007),
    "relay": ("RELAY_PORT", 8008),
}

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError("a port is 0..65535")
    return port


def _rate(raw: str) -> float:
    rate = float(raw)
    if not 0.0 <= rate <= 1.0:
        raise ValueError("a rate is 0.0..1.0")
    return rate


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0.0:  # also refuses NaN
        raise ValueError("must be >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0.0:
        raise ValueError("must be > 0")
    return value


def _multiplier(raw: str) -> float:
    value = float(raw)
    if not value >= 1.0:
        raise ValueError("must be >= 1.0")
    return value


def _namespace(raw: str) -> str:
    if not _NAMESPACE.fullmatch(raw):
        raise ValueError("letters, digits, '_', '.', '-'; at most 63 characters")
    return raw


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level == "WARN":
        level = "WARNING"
    if level not in _LOG_LEVELS:
        raise ValueError(f"one of {', '.join(_LOG_LEVELS)}")
    return level


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("true or false")


_USERINFO_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


def redacted(text: str) -> str:
    """`text` (a URL, or a message quoting one) with every password in it shown as `***`:
    `postgresql://shop:***@db/microshop`. Safe to print and log."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1:***@", text))


def _url(raw: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 (parses the port: a bad one raises)
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in schemes:
        raise ValueError(f"a {' or '.join(f'{s}://' for s in schemes)} URL is expected")
    return raw


def _database_url(raw: str) -> str:
    return _url(raw, ("postgresql", "postgres"))


def _amqp_url(raw: str) -> str:
    return _url(raw, ("amqp", "amqps"))


def _optional_int(raw: str) -> int | None:
    return int(raw) if raw else None


def _env(name: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    return dataclasses.field(default=default, metadata={"env": name, "parse": parse})


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a MicroShop process reads from its environment (see `.env.example`)."""

    database_url: str = _env("DATABASE_URL", "postgresql://127.0.0.1:5432/microshop", _database_url)
    amqp_url: str = _env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", _amqp_url)
    namespace: str = _env("MICROSHOP_NAMESPACE", "microshop", _namespace)
    host: str = _env("MICROSHOP_HOST", "127.0.0.1")
    internal_api_key: str = _env("INTERNAL_API_KEY", "")
    log_level: str = _env("LOG_LEVEL", "INFO", _log_level)

    gateway_port: int = _env("GATEWAY_PORT", 8000, _port)
    auth_port: int = _env("AUTH_PORT", 8001, _port)
    product_port: int = _env("PRODUCT_PORT", 8002, _port)
    cart_port: int = _env("CART_PORT", 8003, _port)
    order_port: int = _env("ORDER_PORT", 8004, _port)
    payment_port: int = _env("PAYMENT_PORT", 8005, _port)
    log_port: int = _env("LOG_PORT", 8006, _port)
    order_consumer_port: int = _env("ORDER_CONSUMER_PORT", 8007, _port)
    relay_port: int = _env("RELAY_PORT", 8008, _port)

    payment_success_rate: float = _env("PAYMENT_SUCCESS_RATE", 0.8, _rate)
    payment_latency_ms: int = _env("PAYMENT_LATENCY_MS", 0, _non_negative_int)
    payment_random_seed: int | None = _env("PAYMENT_RANDOM_SEED", None, _optional_int)
    order_consumer_retry_attempts: int = _env("ORDER_CONSUMER_RETRY_ATTEMPTS", 3, _positive_int)
    order_consumer_backoff_initial: float = _env(
        "ORDER_CONSUMER_BACKOFF_INITIAL", 0.5, _non_negative_float
    )
    order_consumer_backoff_multiplier: float = _env(
        "ORDER_CONSUMER_BACKOFF_MULTIPLIER", 2.0, _multiplier
    )

    admin_email: str = _env("ADMIN_EMAIL", "admin@microshop.local")
    admin_password: str = _env("ADMIN_PASSWORD", "")
    log_retention_days: int = _env("LOG_RETENTION_DAYS", 14, _positive_int)
    # Ship every log line to log-service over RabbitMQ (`{ns}.logs`) besides stderr.
    log_shipping: bool = _env("LOG_SHIPPING", True, _bool)
    log_buffer_lines: int = _env("LOG_BUFFER_LINES", 10_000, _positive_int)
    otel_exporter_otlp_endpoint: str = _env("OTEL_EXPORTER_OTLP_ENDPOINT", "")

    # Where services reach each other (empty: http://127.0.0.1:<its port>).
    auth_url: str = _env("AUTH_URL", "")
    product_url: str = _env("PRODUCT_URL", "")
    cart_url: str = _env("CART_URL", "")
    order_url: str = _env("ORDER_URL", "")
    payment_url: str = _env("PAYMENT_URL", "")
    log_url: str = _env("LOG_URL", "")
    upstream_timeout_seconds: float = _env("UPSTREAM_TIMEOUT_SECONDS", 10.0, _positive_float)
    read_your_writes_timeout_seconds: float = _env(
        "READ_YOUR_WRITES_TIMEOUT_SECONDS", 5.0, _positive_float
    )

    jwt_issuer: str = _env("JWT_ISSUER", "microshop-auth")
    jwt_audience: str = _env("JWT_AUDIENCE", "microshop")
    jwt_ttl_seconds: int = _env("JWT_TTL_SECONDS", 3600, _positive_int)
    # PEM of the RS256 signing key; empty: generated on first start and kept in Postgres.
    jwt_private_key: str = _env("JWT_PRIVATE_KEY", "")
    login_max_failures: int = _env("LOGIN_MAX_FAILURES", 5, _positive_int)
    login_lockout_seconds: int = _env("LOGIN_LOCKOUT_SECONDS", 300, _positive_int)
    cors_origins: str = _env("CORS_ORIGINS", "http://localhost:5173,http://127.0.0.1:5173")
    rate_limit_per_minute: int = _env("RATE_LIMIT_PER_MINUTE", 1200, _positive_int)

    db_pool_max_size: int = _env("DB_POOL_MAX_SIZE", 10, _positive_int)
    # An idle-in-transaction session holds back every global-log reader (the fence).
    db_idle_in_transaction_timeout_ms: int = _env(
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 10_000, _non_negative_int
    )

    ENV_VARS: ClassVar[frozenset[str]]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read every field from `environ` (default `os.environ`); empty means default."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        errors: list[str] = []
        for field in dataclasses.fields(cls):
            name = field.metadata["env"]
            raw = environ.get(name, "").strip()
            if not raw:
                continue
            try:
                values[field.name] = field.metadata["parse"](raw)
            except ValueError as exc:
                errors.append(f"{name}={redacted(raw)!r}: {exc}")
        if errors:
            raise ConfigError("invalid configuration: " + "; ".join(errors))
        values.update(overrides)
        return cls(**values)

    def port_of(self, service: str) -> int:
        """The listening port of `service` (a key of `SERVICE_PORTS`)."""
        env_name, _ = SERVICE_PORTS[service]
        return int(getattr(self, env_name.lower()))

    def url_of(self, service: str) -> str:
        """Base URL of `service` (e.g. `http://127.0.0.1:8001`), without a trailing slash."""
        explicit = getattr(self, f"{service.replace('-', '_')}_url", "")
        url = explicit or f"http://127.0.0.1:{self.port_of(service)}"
        return str(url).rstrip("/")

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(o.strip() for o in self.cors_origins.split(",") if o.strip())

    def queue(self, name: str) -> str:
        """A broker name inside this stack's namespace."""
        return f"{self.namespace}.{name}"

    @property
    def events_exchange(self) -> str:
        return self.queue("events")


Config.ENV_VARS = frozenset(f.metadata["env"] for f in dataclasses.fields(Config))
