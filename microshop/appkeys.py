"""Typed keys of the state every MicroShop app keeps (aiohttp's "no singletons")."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from eventstore import PostgresEventStore
from eventstore.pg import Pool
from eventstore.vault import PersonalDataVault

from .config import Config
from .metrics import Metrics

__all__ = [
    "CONFIG",
    "HTTP",
    "METRICS",
    "POOL",
    "READY_CHECKS",
    "SERVICE",
    "STORE",
    "VAULT",
    "ReadyCheck",
]

ReadyCheck = Callable[[web.Application], Awaitable[str | None]]
"""Returns None when ready, else what is missing."""

CONFIG = web.AppKey("config", Config)
SERVICE = web.AppKey("service", str)
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", Pool)
STORE = web.AppKey("store", PostgresEventStore)
VAULT = web.AppKey("vault", PersonalDataVault)
HTTP = web.AppKey("http", aiohttp.ClientSession)
READY_CHECKS = web.AppKey("ready_checks", list[ReadyCheck])
