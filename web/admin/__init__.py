"""The operator pages (admins only): event log, projections, logs, dead letters."""

from __future__ import annotations

from aiohttp import web

from . import dead_letters, events, logs, projections
from .resources import OPERATOR, operator_context

__all__ = ["OPERATOR", "operator_context", "routes"]


def routes() -> list[web.AbstractRouteDef]:
    return [*events.routes, *projections.routes, *logs.routes, *dead_letters.routes]
