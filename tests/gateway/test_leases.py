"""Leases shared through the database (gateway.leases), on SQLite and PostgreSQL: one
holder at a time, a lease that runs out is claimed by another with a new
generation, the old holder's renewals, finish and fenced writes are refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.db import Database
from gateway.leases import LeaseLost, claim_due, fence, finish, renew
from gateway.models import Lease, utcnow


def test_one_holder_at_a_time_and_a_lease_that_runs_out(db: Database) -> None:
    keys = ["1", "2", "3"]
    a = claim_due(db, "calendar", "node-a", keys, limit=2, lease=60)
    assert set(a) == {"1", "2"} and set(a.values()) == {1}
    b = claim_due(db, "calendar", "node-b", keys, limit=5, lease=60)
    assert b == {"3": 1}  # the others are held
    assert claim_due(db, "calendar", "node-c", keys, limit=5, lease=60) == {}
    # Node A stops renewing; past its lease node C takes "1" over.
    with db.session() as session:
        session.get_one(Lease, ("calendar", "1")).expires_at = utcnow() - timedelta(seconds=1)
    c = claim_due(db, "calendar", "node-c", keys, limit=5, lease=60)
    assert c == {"1": 2}
    assert renew(db, "calendar", "node-a", a, lease=60) == {"2"}  # "1" is lost
    assert not finish(db, "calendar", "node-a", "1", 1, utcnow())
    with db.session() as session, pytest.raises(LeaseLost):
        fence(session, "calendar", "1", "node-a", 1)
    with db.session() as session:
        fence(session, "calendar", "1", "node-c", 2)  # the holder's writes go through


def test_finish_sets_the_next_turn(db: Database) -> None:
    [(key, generation)] = claim_due(db, "job", "node-a", ["dns"], limit=1, lease=60).items()
    assert finish(db, "job", "node-a", key, generation, utcnow() + timedelta(hours=1))
    assert claim_due(db, "job", "node-b", ["dns"], limit=1, lease=60) == {}  # not due
    with db.session() as session:
        session.get_one(Lease, ("job", "dns")).due_at = utcnow() - timedelta(seconds=1)
    assert claim_due(db, "job", "node-b", ["dns"], limit=1, lease=60) == {"dns": 2}


def test_a_holder_started_again_takes_its_own_back_fenced_anew(db: Database) -> None:
    first = claim_due(db, "imap", "host/background", ["7"], limit=1, lease=60)
    again = claim_due(db, "imap", "host/background", ["7"], limit=1, lease=60)
    assert again == {"7": first["7"] + 1}  # the dead process's writes are fenced out
    with db.session() as session, pytest.raises(LeaseLost):
        fence(session, "imap", "7", "host/background", first["7"])
