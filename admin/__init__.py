"""The web app, an operator interface above the roles: the `web` role (server), the
FastAPI app (app), the REST API under /api/v1 (api), /metrics (metrics) and the one
mapping of errors to HTTP problems (problems)."""
