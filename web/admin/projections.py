"""Operator page of the read models: position and lag of every projection and the relay,
what holds the log back, rebuilds, and what an interrupted one left (what
`microshop projections status|rebuild` do)."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from eventstore.checkpoints import Lag, held_back, lag
from eventstore.rebuilding import interrupted

from .. import session
from ..errors import PageError, Redirect
from ..render import page, render
from .resources import OPERATOR, AlreadyRebuilding, RebuildJob

__all__ = ["routes"]

routes = web.RouteTableDef()

RELAY = "relay"


@dataclasses.dataclass(frozen=True, slots=True)
class Reader:
    """A reader of the global log (a projection or the relay) and how far behind it is."""

    name: str
    table: str | None
    lag: Lag
    job: RebuildJob | None


@routes.get("/admin/projections", name="admin_projections")
@page
async def projections_page(request: web.Request) -> web.Response:
    await session.require_admin(request)
    operator = request.app[OPERATOR]
    pool, jobs = operator.pool, operator.rebuilds.jobs
    readers = [
        Reader(name, projection.table, await lag(pool, name), jobs.get(name))
        for name, projection in operator.projections.items()
    ]
    readers.append(Reader(RELAY, None, await lag(pool, RELAY), None))
    waiting, holders = await held_back(pool)
    return await render(
        request,
        "admin/projections.html",
        {
            "readers": readers,
            "waiting": waiting,
            "holders": holders,
            "interrupted": await interrupted(pool),
            "refresh": 2 if operator.rebuilds.running else None,
        },
        title="Projections",
    )


@routes.post("/admin/projections/{name}/rebuild", name="admin_rebuild")
@page
async def rebuild_projection(request: web.Request) -> web.Response:
    """Start a rebuild in the background; the projections page shows its progress."""
    await session.require_admin(request)
    await session.check_csrf(request)
    operator, name = request.app[OPERATOR], request.match_info["name"]
    projection = operator.projections.get(name)
    if projection is None:
        raise PageError(404, "No such projection", f"There is no projection {name!r}.")
    try:
        operator.rebuilds.start(projection)
    except AlreadyRebuilding as running:
        job = running.job
        raise PageError(
            409,
            "Already rebuilding",
            f"A rebuild of {name} started at {job.started_at:%H:%M:%S} UTC is still "
            f"running ({job.percent}%). Wait for it to finish.",
        ) from None
    raise Redirect(f"/admin/projections#{name}")
