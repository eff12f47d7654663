"""gateway: the public entry point — routing, edge auth, rate limits, CORS, API docs."""
