"""Logging in and out of the pages: a form, auth-service's login API, the session cookie."""

from __future__ import annotations

import logging

from aiohttp import web

from microshop.auth import VERIFIER
from microshop.errors import Unauthorized

from . import session
from .errors import PageError
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
    body = answer.body if isinstance(answer.body, dict) else {}
    token = body.get("access_token")
    if not answer.ok or not isinstance(token, str):
        raise PageError(502, "Logging in failed", answer.error_message)
    try:
        await request.app[VERIFIER].verify(token)
    except Unauthorized as exc:  # auth-service issued what its own JWKS does not verify
        log.warning("login: the issued token does not verify: %s", exc.message)
        raise PageError(
            502, "Logging in failed", "The issued token could not be verified."
        ) from None
    max_age = body.get("expires_in")
    response = web.Response(
        status=303, headers={"Location": session.safe_next(request.query.get("next"))}
    )
    session.start_session(request, response, token, max_age if isinstance(max_age, int) else 3600)
    return response


@routes.post("/logout", name="logout")
@page
async def logout(request: web.Request) -> web.Response:
    await session.check_csrf(request)
    response = web.Response(status=303, headers={"Location": "/"})
    session.clear_session(request, response)
    return response
