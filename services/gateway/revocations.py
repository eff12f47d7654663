"""Logins that ended, learned from auth-service, so the edge refuses their access tokens.

Logging out, or presenting a refresh token twice, revokes a login at auth-service; its
access tokens would otherwise keep working until they expire (at most 15 minutes). The
gateway asks auth-service every `TOKEN_REVOCATION_POLL_SECONDS` for the logins revoked
within an access token's lifetime — one small call per interval, none per request — and
hands the set to its token verifier, which then refuses their tokens (`token_revoked`) for
the API and the pages alike. While auth-service cannot be asked the last set stays, and
the tokens still expire on their own. Services behind the gateway do not poll: only the
gateway is reachable from outside.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from marshmallow import Schema, fields

from microshop.appkeys import CONFIG
from microshop.auth import VERIFIER
from microshop.client import ServiceClient, ServiceFailed, UpstreamError

__all__ = ["poll_revocations", "refresh_revocations"]

log = logging.getLogger(__name__)


class _RevokedSchema(Schema):
    sessions = fields.List(fields.String(), required=True)
    window_seconds = fields.Integer(required=True)


async def refresh_revocations(app: web.Application) -> None:
    """Ask auth-service once and replace the verifier's set (`UpstreamError` if it fails)."""
    client = ServiceClient.of(app, "auth", internal=True, timeout=5.0)
    reply = await client.get("/internal/sessions/revoked")
    if reply.status != 200:
        message = f"auth-service answered {reply.status}: {reply.error_message}"
        raise ServiceFailed("auth", message, upstream_status=reply.status)
    app[VERIFIER].revoked_sessions = frozenset(client.load(reply, _RevokedSchema())["sessions"])


async def poll_revocations(app: web.Application) -> None:
    """`refresh_revocations` every poll interval, for as long as the gateway runs."""
    failing = False
    while True:
        try:
            await refresh_revocations(app)
        except UpstreamError as exc:
            if not failing:  # once per outage, not every poll
                log.warning("cannot learn revoked logins: %s", exc.message)
            failing = True
        else:
            if failing:
                log.info("learning revoked logins again")
            failing = False
        await asyncio.sleep(app[CONFIG].token_revocation_poll_seconds)
