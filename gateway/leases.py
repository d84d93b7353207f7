"""Leases of work that one node at a time may do, shared through the database.

    claim_due   the due and free ones of some keys (no holder, its lease ran out,
                or its holder is this one's predecessor), now this holder's for
                [cluster] lease seconds, their generation one higher (FOR UPDATE SKIP
                LOCKED on PostgreSQL)
    announce    a holder says it is alive; who else is (each takes its share)
    renew       the holder's heartbeat: its leases live on; those it lost are told
    finish      done: free again, due next at the time given (refused if lost)
    fence       in the transaction of a write: raises LeaseLost unless the lease is
                still this holder's, of this generation, and not run out (the row is
                locked until the commit, so no other node can claim it meanwhile)

A node that dies loses its leases when they run out; others claim them then. A node
that froze past its lease (a long pause, a partition from the database) writes
nothing more: its next fenced write finds the generation moved on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from gateway.db import Database, insert_ignore
from gateway.errors import GatewayError
from gateway.models import Lease, table_of, utcnow

Fence = Callable[[Session], None]  # run in the transaction of a write: raises LeaseLost


class LeaseLost(GatewayError):
    """The lease is another holder's now (or ran out): the work stops, unwritten."""


def claim_due(
    db: Database,
    kind: str,
    holder: str,
    keys: Iterable[str],
    limit: int,
    lease: float,
    now: datetime | None = None,
    first_due: datetime | None = None,
) -> dict[str, int]:
    """Up to `limit` of `keys` that are due and free, now held by `holder`: key ->
    the generation its writes are fenced with. A key seen for the first time is due
    at `first_due` (default: now)."""
    keys = sorted(set(keys))
    if not keys or limit < 1:
        return {}
    now = now or utcnow()
    with db.session() as session:
        first = first_due or now
        fresh = [{"kind": kind, "key": k, "generation": 0, "due_at": first} for k in keys]
        insert_ignore(session, table_of(Lease), fresh, ["kind", "key"])
        # Free: nobody's, run out, or this holder's own from before (a process started
        # in place of one that died takes its work back at once, fenced anew).
        free = or_(
            Lease.holder.is_(None),
            Lease.holder == holder,
            Lease.expires_at.is_(None),
            Lease.expires_at < now,
        )
        rows = session.execute(
            select(Lease.key, Lease.generation)
            .where(Lease.kind == kind, Lease.key.in_(keys), Lease.due_at <= now, free)
            .order_by(Lease.due_at, Lease.key)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        held = {}
        until = now + timedelta(seconds=lease)
        for key, generation in rows:
            session.execute(
                update(Lease)
                .where(Lease.kind == kind, Lease.key == key)
                .values(holder=holder, generation=generation + 1, expires_at=until)
            )
            held[key] = generation + 1
        return held


def renew(db: Database, kind: str, holder: str, held: dict[str, int], lease: float) -> set[str]:
    """Move the holder's leases on; the keys still its own (the others are lost)."""
    if not held:
        return set()
    now = utcnow()
    mine = or_(*(and_(Lease.key == k, Lease.generation == g) for k, g in held.items()))
    with db.session() as session:
        renewed = session.execute(
            update(Lease)
            .where(Lease.kind == kind, Lease.holder == holder, Lease.expires_at >= now, mine)
            .values(expires_at=now + timedelta(seconds=lease))
            .returning(Lease.key)
        )
        return {str(k) for k in renewed.scalars()}


def finish(
    db: Database, kind: str, holder: str, key: str, generation: int, due_at: datetime
) -> bool:
    """The work is done: the lease is free again, due next at `due_at`. False when it
    was lost meanwhile (then whoever holds it now decides)."""
    with db.session() as session:
        done = session.execute(
            update(Lease)
            .where(
                Lease.kind == kind,
                Lease.key == key,
                Lease.holder == holder,
                Lease.generation == generation,
            )
            .values(holder=None, expires_at=None, due_at=due_at)
        )
        return bool(getattr(done, "rowcount", 0))


def announce(db: Database, kind: str, holder: str, lease: float) -> set[str]:
    """`holder` is alive and shares the work of `kind` for `lease` seconds more; the
    holders alive now (this one included), so that each takes its share."""
    now = utcnow()
    with db.session() as session:
        row = {"kind": f"{kind}:nodes", "key": holder, "generation": 0, "due_at": now}
        insert_ignore(session, table_of(Lease), [row], ["kind", "key"])
        session.execute(
            update(Lease)
            .where(Lease.kind == f"{kind}:nodes", Lease.key == holder)
            .values(holder=holder, expires_at=now + timedelta(seconds=lease))
        )
        alive = session.scalars(
            select(Lease.key).where(Lease.kind == f"{kind}:nodes", Lease.expires_at >= now)
        )
        return {str(k) for k in alive}


def holder_of(db: Database, kind: str, key: str) -> str | None:
    """Who holds the lease now (None: nobody, or it ran out)."""
    with db.read() as session:
        return session.scalar(
            select(Lease.holder).where(
                Lease.kind == kind, Lease.key == key, Lease.expires_at >= utcnow()
            )
        )


def fencing(
    kind: str, key: str, holder: str, generation: int, extend: float | None = None
) -> Fence:
    """The fence of one lease, for the writes of the work it covers (each write moving
    the lease on by `extend` seconds, when given: work with no heartbeat of its own)."""
    return lambda session: fence(session, kind, key, holder, generation, extend)


def fence(
    session: Session,
    kind: str,
    key: str,
    holder: str,
    generation: int,
    extend: float | None = None,
) -> None:
    """Raise LeaseLost unless the lease is still `holder`'s at `generation` and has
    not run out; on PostgreSQL the row stays locked until this transaction commits.
    With `extend`, the lease then lives that many seconds from now."""
    found = session.execute(
        select(Lease.generation)
        .where(
            Lease.kind == kind,
            Lease.key == key,
            Lease.holder == holder,
            Lease.generation == generation,
            Lease.expires_at >= utcnow(),
        )
        .with_for_update()
    ).first()
    if found is None:
        raise LeaseLost(f"the {kind} lease of {key} is not {holder}'s any more")
    if extend is not None:
        session.execute(
            update(Lease)
            .where(Lease.kind == kind, Lease.key == key)
            .values(expires_at=utcnow() + timedelta(seconds=extend))
        )
