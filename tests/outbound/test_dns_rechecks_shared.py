"""The DNS re-checks with several nodes (outbound.sending_domains.due), on SQLite and
PostgreSQL: of nodes looking at once, each due domain goes to exactly one, and none
is due again before [dns_checks] interval has passed."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

from sqlalchemy import update

from gateway.config import Config
from gateway.db import Database
from gateway.models import SendingDomain, utcnow
from outbound.sending_domains import due

DOMAINS = 30


def test_each_due_domain_is_claimed_by_one_node_once_an_interval(
    db: Database, config: Config, account_id: int
) -> None:
    with db.session() as session:
        session.add_all(
            SendingDomain(account_id=account_id, domain=f"d{i}.example") for i in range(DOMAINS)
        )
    claimed: Counter[str] = Counter()
    lock = threading.Lock()

    def node() -> None:
        while found := due(db, config, limit=5):
            with lock:
                claimed.update(domain for _, domain in found)

    nodes = [threading.Thread(target=node) for _ in range(4)]
    for thread in nodes:
        thread.start()
    for thread in nodes:
        thread.join()
    assert len(claimed) == DOMAINS and set(claimed.values()) == {1}
    assert due(db, config) == []  # checked just now: not due for an interval
    with db.session() as session:  # an interval later
        earlier = utcnow() - timedelta(seconds=config.dns_checks.interval + 1)
        session.execute(update(SendingDomain).values(checked_at=earlier))
    assert len(due(db, config, limit=DOMAINS)) == DOMAINS
