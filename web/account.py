"""Logging in and out of the pages: a form, auth-service's login and logout API, the
session cookies."""

from __future__ import annotations

import logging

from aiohttp import web

from microshop.auth import VERIFIER
from microshop.errors import Unauthorized

from . import session
from .errors import PageError
from .refresh import Pair
from .render import page, render
from .upstream import call

__all__ = ["routes"]

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _form(
    request: web.Request, *, email: str = "", error: str = "", status: int = 200
) -> web.Response:
    next_url = session.safe_next(request.query.get("next"), "")
    values = {"email": email, "error": error, "next": next_url}
    return await render(request, "login.html", values, status=status, title="Log in")


@routes.get("/login", name="login")
@page
async def login_form(request: web.Request) -> web.Response:
    return await _form(request)


@routes.post("/login")
@page
async def login(request: web.Request) -> web.Response:
    form = await session.check_csrf(request)
    email, password = form.get("email", "").strip(), form.get("password", "")
    if not email or not password:
        return await _form(request, email=email, error="Enter your email and password.", status=422)
    answer = await call(
        request,
        "auth",
        "POST",
        "/api/auth/login",
        json={"email": email, "password": password},
        vouch=True,
    )
    if answer.status == 429:
        wait = answer.headers.get("Retry-After", "a few")
        error = f"Too many failed logins: try again in {wait} seconds."
        return await _form(request, email=email, error=error, status=429)
    if answer.status in (401, 422):
        return await _form(request, email=email, error="Wrong email or password.", status=401)
    pair = Pair.of(answer.body) if answer.ok else None
    if pair is None:
        raise PageError(502, "Logging in failed", answer.error_message)
    try:
        await request.app[VERIFIER].verify(pair.access_token)
    except Unauthorized as exc:  # auth-service issued what its own JWKS does not verify
        log.warning("login: the issued token does not verify: %s", exc.message)
        raise PageError(
            502, "Logging in failed", "The issued token could not be verified."
        ) from None
    session.start_session(request, pair)
    return web.Response(
        status=303, headers={"Location": session.safe_next(request.query.get("next"))}
    )


@routes.post("/logout", name="logout")
@page
async def logout(request: web.Request) -> web.Response:
    """Revoke the login at auth-service (the gateway refuses its access tokens within
    seconds), then forget both cookies — even when auth-service cannot be told."""
    await session.check_csrf(request)
    token = session.refresh_token(request)
    session.end_session(request)
    if token:
        try:
            answer = await call(
                request, "auth", "POST", "/api/auth/logout", json={"refresh_token": token}
            )
        except PageError as exc:
            log.warning("logout: cannot revoke the login: %s", exc.message)
        else:
            if answer.status != 204:
                log.warning("logout: auth-service answered %d", answer.status)
    return web.Response(status=303, headers={"Location": "/"})
