"""Web front ends served by the gateway: server-rendered Jinja pages (aiohttp-jinja2) and
the React (Vite) app in `web/frontend`. They talk to the services only through
the public HTTP API."""
