"""The outbound role's verbs: `gateway dkim`, `gateway domain`, `gateway dns`, `gateway queue`
and `gateway user route`."""

from __future__ import annotations

from gateway.cli.verbs import Verbs
from outbound.cli import dkim, domains, queue, route


def register(verbs: Verbs) -> None:
    dkim.register(verbs)
    domains.register(verbs)
    queue.register(verbs)
    route.register(verbs)
