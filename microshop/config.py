"""Configuration: one frozen dataclass, read from the environment once and passed in."""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

from eventstore.amqp import QUEUE_TYPES, broker_urls
from eventstore.sealing import KeyEncryptionKeys

__all__ = [
    "MAX_ACCESS_TTL",
    "SERVICE_PORTS",
    "Config",
    "ConfigError",
    "Replicas",
    "redacted",
    "replica_port",
]


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


def replica_port(port: int, replica: int) -> int:
    """Replica `replica` (0-based) of a service listens on its port + 100 * replica."""
    return port + 100 * replica


MAX_ACCESS_TTL = 900
"""Access tokens live at most 15 minutes: logging out or a revoked login ends them soon."""


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


def _access_ttl(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_ACCESS_TTL:
        raise ValueError(f"an access token lives 1..{MAX_ACCESS_TTL} seconds")
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


def _key_encryption_keys(raw: str) -> str:
    KeyEncryptionKeys.parse(raw)  # ValueError names what is wrong, never the key
    return raw


_USERINFO_PASSWORD = re.compile(r"(://[^/@:\s]*):[^/\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&\s]*", re.IGNORECASE)


def redacted(text: str) -> str:
    """`text` (a URL, or a message quoting one) with every password in it shown as `***`:
    `postgresql://shop:***@db/microshop`. Safe to print and log."""
    return _QUERY_PASSWORD.sub(r"\1***", _USERINFO_PASSWORD.sub(r"\1:***@", text))


def _database_url(raw: str) -> str:
    try:
        parts = urllib.parse.urlsplit(raw)
        parts.port  # noqa: B018 (parses the port: a bad one raises)
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError("a postgresql:// or postgres:// URL is expected")
    return raw


def _optional_int(raw: str) -> int | None:
    return int(raw) if raw else None


_BASE_URL = re.compile(r"^https?://[^/\s,]+(/[^\s,]*)?$")


def _urls(raw: str) -> str:
    """One base URL or several, comma-separated (the replicas of a service)."""
    urls = [u.strip().rstrip("/") for u in raw.split(",")]
    bad = [u for u in urls if not _BASE_URL.match(u)]
    if bad or not urls:
        raise ValueError(f"http(s) base URLs, comma-separated (not {', '.join(map(repr, bad))})")
    return ",".join(urls)


MAX_REPLICAS = 50


@dataclasses.dataclass(frozen=True, slots=True)
class Replicas:
    """How many instances of each service `microshop up` runs: `N` for all, `name=N`
    for one, both comma-separated (`2,order=3`: three order-services, two of the rest)."""

    default: int = 1
    per_service: tuple[tuple[str, int], ...] = ()

    def of(self, service: str) -> int:
        return dict(self.per_service).get(service, self.default)

    @classmethod
    def parse(cls, raw: str) -> Replicas:
        default, per_service = 1, {}
        for part in (p.strip() for p in raw.split(",")):
            name, sep, count = part.rpartition("=")
            name = name.strip()
            if not part or (sep and name not in SERVICE_PORTS):
                known = ", ".join(SERVICE_PORTS)
                raise ValueError(f"N or SERVICE=N, comma-separated; services: {known}")
            try:
                value = int(count)
            except ValueError:
                raise ValueError(f"{part!r}: the count is not a whole number") from None
            if not 1 <= value <= MAX_REPLICAS:
                raise ValueError(f"{part!r}: between 1 and {MAX_REPLICAS} replicas")
            if sep:
                per_service[name] = value
            else:
                default = value
        return cls(default, tuple(sorted(per_service.items())))

    def __str__(self) -> str:
        parts = [str(self.default)] if self.default != 1 or not self.per_service else []
        return ",".join(parts + [f"{name}={n}" for name, n in self.per_service])


ONE_EACH = Replicas()


def _amqp_urls(raw: str) -> str:
    """One broker URL, or several comma-separated (a cluster's nodes); each amqp(s)://."""
    urls = broker_urls(raw)
    wrong = [
        u for u in urls if urlsplit(u).scheme not in ("amqp", "amqps") or not urlsplit(u).hostname
    ]
    if wrong or not urls:
        named = ", ".join(repr(redacted(u)) for u in wrong) or "no URL given"
        raise ValueError(f"each URL must be amqp://HOST/... or amqps://HOST/... ({named})")
    return ",".join(urls)


def _queue_type(raw: str) -> str:
    value = raw.lower()
    if value not in QUEUE_TYPES:
        raise ValueError(f"one of {', '.join(QUEUE_TYPES)}")
    return value


def _env(
    name: str, default: Any, parse: Callable[[str], Any] = str, *, secret: bool = False
) -> Any:
    """A field read from `name`; a `secret` one's value is never shown in an error."""
    return dataclasses.field(
        default=default, metadata={"env": name, "parse": parse, "secret": secret}
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    """Everything a MicroShop process reads from its environment (see `.env.example`)."""

    database_url: str = _env("DATABASE_URL", "postgresql://127.0.0.1:5432/microshop", _database_url)
    # One URL, or several comma-separated: the nodes of a RabbitMQ cluster.
    amqp_url: str = _env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", _amqp_urls, secret=True)
    amqp_queue_type: str = _env("AMQP_QUEUE_TYPE", "quorum", _queue_type)
    namespace: str = _env("MICROSHOP_NAMESPACE", "microshop", _namespace)
    host: str = _env("MICROSHOP_HOST", "127.0.0.1")
    # How many instances of each service `microshop up` runs (`3`, `order=3,cart=2`).
    replicas: Replicas = _env("MICROSHOP_REPLICAS", ONE_EACH, Replicas.parse)  # noqa: RUF009
    # Which of them this process is (0-based; set by `microshop up`): it listens on its
    # service's port + 100 * replica.
    replica: int = _env("MICROSHOP_REPLICA", 0, _non_negative_int)
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

    # Where services reach each other (empty: http://127.0.0.1:<its port>); several base
    # URLs, comma-separated, for a service with several replicas (callers spread over them).
    auth_url: str = _env("AUTH_URL", "", _urls)
    product_url: str = _env("PRODUCT_URL", "", _urls)
    cart_url: str = _env("CART_URL", "", _urls)
    order_url: str = _env("ORDER_URL", "", _urls)
    payment_url: str = _env("PAYMENT_URL", "", _urls)
    log_url: str = _env("LOG_URL", "", _urls)
    upstream_timeout_seconds: float = _env("UPSTREAM_TIMEOUT_SECONDS", 10.0, _positive_float)
    read_your_writes_timeout_seconds: float = _env(
        "READ_YOUR_WRITES_TIMEOUT_SECONDS", 5.0, _positive_float
    )

    jwt_issuer: str = _env("JWT_ISSUER", "microshop-auth")
    jwt_audience: str = _env("JWT_AUDIENCE", "microshop")
    jwt_ttl_seconds: int = _env("JWT_TTL_SECONDS", MAX_ACCESS_TTL, _access_ttl)
    # A refresh token unused this long is dead (the login ends when the app is left idle).
    refresh_token_ttl_seconds: int = _env("REFRESH_TOKEN_TTL_SECONDS", 7 * 86400, _positive_int)
    # A login's absolute lifetime: refreshing never extends it past this.
    session_max_age_seconds: int = _env("SESSION_MAX_AGE_SECONDS", 30 * 86400, _positive_int)
    # How often the gateway learns which logins ended (their access tokens refused at the edge).
    token_revocation_poll_seconds: float = _env(
        "TOKEN_REVOCATION_POLL_SECONDS", 2.0, _positive_float
    )
    # PEM of the RS256 signing key; empty: generated on first start and kept in Postgres.
    jwt_private_key: str = _env("JWT_PRIVATE_KEY", "")
    # Key-encryption keys of personal data (base64 of 32 bytes; the current one first, then
    # older ones during a rotation); empty: the development key file var/pii-kek.
    pii_key_encryption_key: str = _env(
        "PII_KEY_ENCRYPTION_KEY", "", _key_encryption_keys, secret=True
    )
    login_max_failures: int = _env("LOGIN_MAX_FAILURES", 5, _positive_int)
    login_lockout_seconds: int = _env("LOGIN_LOCKOUT_SECONDS", 300, _positive_int)
    cors_origins: str = _env("CORS_ORIGINS", "http://localhost:5173,http://127.0.0.1:5173")
    rate_limit_per_minute: int = _env("RATE_LIMIT_PER_MINUTE", 1200, _positive_int)

    # Connections of each process's pool; `microshop up` sizes it to fit the server when
    # unset (see `microshop budget`).
    db_pool_max_size: int = _env("DB_POOL_MAX_SIZE", 5, _positive_int)
    # A direct URL for each process's one session connection (LISTEN/NOTIFY, leader locks)
    # when DATABASE_URL goes through PgBouncer in transaction mode; empty: DATABASE_URL.
    database_direct_url: str = _env("DATABASE_DIRECT_URL", "", _database_url)
    # Prepared statements each pooled connection keeps (0 behind PgBouncer's transaction
    # mode, which cannot keep them across transactions).
    db_statement_cache_size: int = _env("DB_STATEMENT_CACHE_SIZE", 100, _non_negative_int)
    # Connections of the server `microshop up` leaves to others (CLI commands, psql, a
    # migration, monitoring) when it checks that the stack fits max_connections.
    db_connection_reserve: int = _env("DB_CONNECTION_RESERVE", 10, _non_negative_int)
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
                shown = "<hidden>" if field.metadata["secret"] else repr(redacted(raw))
                errors.append(f"{name}={shown}: {exc}")
        if errors:
            raise ConfigError("invalid configuration: " + "; ".join(errors))
        values.update(overrides)
        return cls(**values)

    def port_of(self, service: str) -> int:
        """The listening port of `service` (a key of `SERVICE_PORTS`)."""
        env_name, _ = SERVICE_PORTS[service]
        return int(getattr(self, env_name.lower()))

    def listen_port(self, service: str) -> int:
        """The port this process listens on as `service`'s replica `replica`."""
        return replica_port(self.port_of(service), self.replica)

    def urls_of(self, service: str) -> tuple[str, ...]:
        """Base URLs of `service`'s replicas (e.g. `http://127.0.0.1:8001`), without a
        trailing slash: `<SERVICE>_URL`, else this host at its port."""
        explicit = getattr(self, f"{service.replace('-', '_')}_url", "")
        if explicit:
            return tuple(str(explicit).split(","))
        return (f"http://127.0.0.1:{self.port_of(service)}",)

    def url_of(self, service: str) -> str:
        """The first base URL of `service`."""
        return self.urls_of(service)[0]

    @property
    def behind_pooler(self) -> bool:
        """DATABASE_URL goes through a transaction-mode pooler (PgBouncer): sessions go
        to DATABASE_DIRECT_URL."""
        return bool(self.database_direct_url) and self.database_direct_url != self.database_url

    @property
    def pool_idle_in_transaction_timeout_ms(self) -> int | None:
        """What pools ask of their sessions; None behind a pooler, which refuses the
        setting as a startup parameter (set it on the database or role there)."""
        return None if self.behind_pooler else self.db_idle_in_transaction_timeout_ms

    @property
    def session_database_url(self) -> str:
        """Where each process's session connection goes (LISTEN, locks): not through a
        transaction-mode PgBouncer."""
        return self.database_direct_url or self.database_url

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
