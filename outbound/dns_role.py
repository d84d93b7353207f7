"""The `dns` role: re-checks each sending domain's DNS every [dns_checks] interval.

Each pass claims the domains whose last check is older than the interval (one node
gets each: outbound.sending_domains.due) and checks them one after another; a
domain whose checks fail [dns_checks] alert_after times in a row raises the banner
and a domain.dns_failed webhook (outbound.sending_domains.check).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.config import Config
from gateway.db import Database
from gateway.errors import ROUND_FAILURES, GatewayError
from gateway.role import RoleContext
from gateway.vault import Vault
from outbound.sending_domains import check, due

log = logging.getLogger(__name__)
LOOK_EVERY = 60.0  # seconds between looks for domains due a check


class DnsRole:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.config = config

    async def start(self) -> None:
        pass

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.pass_once)
            except ROUND_FAILURES as exc:  # the database away for a moment: next time
                log.warning("dns: a pass of checks stopped: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    stop.wait(), min(LOOK_EVERY, self.config.dns_checks.interval)
                )

    def pass_once(self) -> int:
        """Check every domain that is due; how many were checked."""
        claimed = due(self.db, self.config)
        if not claimed:
            return 0
        vault = Vault.load(self.config.secret_key_file)
        for account_id, domain in claimed:
            try:
                done = check(self.db, self.config, vault, account_id, domain)
            except GatewayError as exc:
                log.warning("dns: %s was not checked: %s", domain, exc)
                continue
            if done.alerted:
                log.warning(
                    "dns: %s failed %s checks in a row: %s",
                    domain,
                    done.failures,
                    "; ".join(f.words for f in done.findings if f.status == "fail"),
                )
        return len(claimed)


def build(ctx: RoleContext) -> DnsRole:
    """The `dns` role (gateway.registry)."""
    return DnsRole(ctx.db, ctx.config)
